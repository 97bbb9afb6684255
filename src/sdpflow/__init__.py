"""sdpflow: science data-processing pipelines on Dask, from a laptop to a cluster."""

from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

try:
    __version__ = _version("sdpflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Run", "TaskPool", "__version__", "resume", "run", "runs"]

#: Names exported lazily, so that ``import sdpflow`` does not import Dask (nor pydantic, nor the store).
_LAZY = {"TaskPool": "sdpflow.engine.taskpool", "run": "sdpflow.api", "resume": "sdpflow.api",
         "runs": "sdpflow.api", "Run": "sdpflow.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdpflow' has no attribute {name!r}")
