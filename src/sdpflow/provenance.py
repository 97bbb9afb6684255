"""Checksums of files and folders, and the provenance record every product carries."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: Packages whose versions are recorded in every product's provenance.
KEY_DEPENDENCIES = ("numpy", "dask", "distributed", "ducc0", "python-casacore", "astropy", "h5py")

_CHUNK_BYTES = 4 * 1024 * 1024


def sdpflow_version() -> str:
    """The installed sdpflow version."""
    from sdpflow import __version__

    return __version__


def dependency_versions() -> dict[str, str]:
    """Versions of sdpflow and its key scientific dependencies ('missing' where absent)."""
    versions = {"sdpflow": sdpflow_version()}
    for name in KEY_DEPENDENCIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    return versions


def checksum(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in sorted order).

    A folder (a MeasurementSet, say) hashes every regular file below it with its relative
    path, so renaming, adding, removing or changing any file changes the checksum.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(b"\0")
            _update_with_file(digest, file)
    else:
        _update_with_file(digest, path)
    return "sha256:" + digest.hexdigest()


def _update_with_file(digest: "hashlib._Hash", file: Path) -> None:
    with open(file, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys (non-JSON values as their ``str``): the text that is hashed."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def config_hash(section: Any) -> str:
    """A stable hash of a JSON-serialisable configuration (keys sorted)."""
    return "sha256:" + hashlib.sha256(canonical_json(section).encode()).hexdigest()


def record_digest(record: dict[str, Any]) -> str:
    """The SHA-256 (64 hex digits) of a provenance record's :func:`canonical_json` text.

    FITS products carry it as ``SDPPROV`` beside the record itself, so a reader can check that
    the record it parses is the one the product was written with.
    """
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


def provenance_record(
    *, config_hash: str | None = None, inputs: dict[str, str] | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """What made a product: versions, configuration hash, input checksums, host, user and time.

    Stored in the run database and inside the product (a FITS PROVENANCE extension with its digest in
    ``SDPPROV``, HDF5 attributes).
    """
    return {
        "versions": dependency_versions(),
        "config_hash": config_hash,
        "inputs": dict(inputs or {}),
        "run_id": run_id,
        "host": socket.gethostname(),
        "user": current_user(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def current_user() -> str:
    """The login name, or the numeric uid where there is none (containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def atomic_path(final: str | Path) -> Path:
    """A temporary sibling path to write before an atomic rename onto ``final``."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def replace_atomically(tmp: str | Path, final: str | Path) -> None:
    """Move a finished temporary file or folder onto its final path in one step.

    A folder that already exists at ``final`` is moved aside first and removed after the
    rename, so readers see either the old or the new product, never a half-written one.
    """
    import shutil

    tmp, final = Path(tmp), Path(final)
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
