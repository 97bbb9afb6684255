"""How much Dask logs: sdpflow reports a failure itself, in one line (no Dask import here: the CLI starts fast)."""

from __future__ import annotations

import logging
import os


def set_dask_logging(verbose: int = 0) -> None:
    """Dask's own logging for this process and the workers it starts: critical only (0), warnings (1), info (2).

    Dask logs every worker start and stop at INFO and a failed task's traceback at ERROR; sdpflow
    reports the failure itself. The environment variable reaches worker processes started from here;
    one the user set is kept.
    """
    level = ("critical", "warning", "info")[min(max(verbose, 0), 2)]
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level)
    logging.getLogger("distributed").setLevel(level.upper())
