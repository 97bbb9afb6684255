"""Manifests of committed outputs: size, modification time and SHA-256 of every file.

A stage or an item records one :func:`manifest_entry` per output when it commits it. On
resume :func:`intact` compares sizes and modification times only (a stat per file, so a
stage of 10^5 item outputs is checked in well under a second); ``verify=True`` re-hashes
every byte, as ``sdpflow runs resume --verify`` asks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sdpflow.provenance import checksum

#: One output's manifest entry: {"sha256": "sha256:…", "size": bytes, "mtime_ns": ns} for a file;
#: a folder has "files": {relative path: [size, mtime_ns]} instead of size and mtime_ns.
Entry = dict[str, Any]


def manifest_entry(path: str | Path) -> Entry:
    """The manifest entry of a file or folder as it is now."""
    path = Path(path)
    if path.is_dir():
        files = {}
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            files[str(file.relative_to(path))] = [stat.st_size, stat.st_mtime_ns]
        return {"sha256": checksum(path), "files": files}
    stat = path.stat()
    return {"sha256": checksum(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def entry_checksum(entry: Entry | str) -> str:
    """The checksum an entry records (records written before manifests hold the bare checksum)."""
    return entry if isinstance(entry, str) else entry["sha256"]


def intact(path: str | Path, entry: Entry | str, *, verify: bool = False) -> str | None:
    """Why the output at ``path`` no longer matches its entry, or None when it does.

    Without ``verify`` only sizes and modification times are compared; with it (or for an
    entry that records no sizes) the content is hashed again.
    """
    path = Path(path)
    if not path.exists():
        return "missing"
    if verify or isinstance(entry, str):
        return None if checksum(path) == entry_checksum(entry) else "changed since it was written"
    if "files" in entry:
        if not path.is_dir():
            return "is no longer a folder"
        found = {}
        for root, _dirs, names in os.walk(path):
            for name in names:
                file = Path(root, name)
                stat = file.stat()
                found[str(file.relative_to(path))] = [stat.st_size, stat.st_mtime_ns]
        return None if found == entry["files"] else "changed since it was written"
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    if stat.st_size != entry["size"] or stat.st_mtime_ns != entry["mtime_ns"]:
        return "changed since it was written"
    return None
