"""Worker plugins for task pools: get files out of node-local storage.

* :class:`StageOut` copies a worker-local directory to shared storage when the worker is torn
  down (the pool ends, the cluster closes, the plugin is unregistered).
* :class:`ContinuousArchive` writes a tar archive of a worker-local directory every
  ``interval`` seconds and at teardown. Each archive is written to a temporary file beside
  its final name, flushed to disk and renamed over it, so a crash at any moment leaves the
  previous complete archive, never a torn one.

Both name their outputs after the worker (``worker.name``), since node-local directories
differ from node to node. Standard library only: they run on workers.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import threading
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

logger = logging.getLogger(__name__)


def worker_label(worker) -> str:
    """A file-name-safe label of a worker: its name, else its address."""
    name = getattr(worker, "name", None)
    label = str(name if name not in (None, "") else getattr(worker, "address", "worker"))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "worker"


class StageOut(WorkerPlugin):
    """Copy ``src`` (a worker-local directory) into ``dst`` at teardown.

    ``per_worker=True`` copies into ``dst/<worker>/`` so that nodes with equal file names do
    not overwrite each other. Each file is copied to a temporary name and renamed, so a
    reader of ``dst`` never sees half a file. ``src`` is created at setup.
    """

    def __init__(self, src: str | os.PathLike, dst: str | os.PathLike, *, per_worker: bool = False):
        self.src, self.dst, self.per_worker = os.fspath(src), os.fspath(dst), per_worker
        self.name = f"sdpflow-stage-out-{abs(hash((self.src, self.dst))):x}"

    def setup(self, worker) -> None:
        Path(self.src).mkdir(parents=True, exist_ok=True)

    def teardown(self, worker) -> None:
        target = Path(self.dst) / worker_label(worker) if self.per_worker else Path(self.dst)
        try:
            copied = copy_tree(Path(self.src), target)
            logger.info("staged out %d files from %s to %s", copied, self.src, target)
        except OSError as error:
            logger.error("stage-out from %s to %s failed: %s", self.src, target, error)


def copy_tree(src: Path, dst: Path) -> int:
    """Copy every file under ``src`` to the same place under ``dst``, atomically per file."""
    count = 0
    for root, _dirs, files in os.walk(src):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            temporary = out / f".{name}.part-{os.getpid()}"
            shutil.copy2(Path(root) / name, temporary)
            os.replace(temporary, out / name)
            count += 1
    return count


class ContinuousArchive(WorkerPlugin):
    """A tar archive of ``src`` in ``dst/<worker>.tar.gz`` every ``interval`` seconds and at teardown.

    ``compression``: ``gz``, ``bz2``, ``xz`` or ``""`` (plain tar). Archives are replaced
    atomically (temporary file, ``fsync``, rename); ``archives_written`` counts them on the
    worker.
    """

    def __init__(self, src: str | os.PathLike, dst: str | os.PathLike, interval: float = 60.0, *, compression: str = "gz"):
        if interval <= 0:
            raise ValueError(f"ContinuousArchive: interval must be positive seconds, not {interval!r}")
        if compression not in ("gz", "bz2", "xz", ""):
            raise ValueError(f"ContinuousArchive: compression must be gz, bz2, xz or '', not {compression!r}")
        self.src, self.dst = os.fspath(src), os.fspath(dst)
        self.interval, self.compression = float(interval), compression
        self.name = f"sdpflow-archive-{abs(hash((self.src, self.dst))):x}"
        self.archives_written = 0

    def archive_path(self, worker) -> Path:
        suffix = f".tar.{self.compression}" if self.compression else ".tar"
        return Path(self.dst) / f"{worker_label(worker)}{suffix}"

    def setup(self, worker) -> None:
        Path(self.src).mkdir(parents=True, exist_ok=True)
        Path(self.dst).mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._path = self.archive_path(worker)
        self._thread = threading.Thread(target=self._loop, name="sdpflow-archive", daemon=True)
        self._thread.start()

    def teardown(self, worker) -> None:
        stop = getattr(self, "_stop", None)
        if stop is None:
            return
        stop.set()
        self._thread.join()
        self._write()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def _write(self) -> None:
        """One archive, written beside its final name and renamed over it."""
        temporary = self._path.with_name(f".{self._path.name}.part-{os.getpid()}-{threading.get_ident()}")
        mode = f"w:{self.compression}" if self.compression else "w"
        try:
            with open(temporary, "wb") as raw:
                with tarfile.open(fileobj=raw, mode=mode) as archive:
                    archive.add(self.src, arcname=".")
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(temporary, self._path)
            self.archives_written += 1
        except OSError as error:
            logger.error("archive of %s to %s failed: %s", self.src, self._path, error)
            with_suppressed_unlink(temporary)


def with_suppressed_unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
