"""Objects named ``module:attribute`` (a pipeline, a task function), found as ``python -m`` would find them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any


def import_object(spec: str) -> Any:
    """The object ``spec`` names: ``package.module:attribute`` or ``module:Class.method``.

    The current folder is searched too, so a ``myflows.py`` beside the command is found; worker
    processes started afterwards inherit the path. It comes last on ``sys.path``: a stray
    ``bokeh.py`` in the folder must not replace an installed package (and run its code).
    Raises ImportError or AttributeError with the reason.
    """
    module_name, _, attribute = spec.partition(":")
    here = str(Path.cwd())
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
