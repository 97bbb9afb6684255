"""The pipeline registry: a pipeline is one :class:`Pipeline` value, found by name.

Pipelines, built-in ones too, are registered through the ``sdpflow.pipelines`` entry-point
group (``[project.entry-points."sdpflow.pipelines"]`` in a package's pyproject.toml, each
naming a module-level :class:`Pipeline`). A pipeline that is not installed can still be
named ``package.module:ATTRIBUTE``. Listing the registered names imports no pipeline; looking
one up imports only its own module, so pipeline modules named here should stay light and
import their science inside ``build``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from sdpflow.errors import InputError
from sdpflow.importing import import_object

if TYPE_CHECKING:
    from sdpflow.engine.flow import Stage

#: The entry-point group pipelines are registered in.
ENTRY_POINT_GROUP = "sdpflow.pipelines"


@dataclass(frozen=True)
class Pipeline:
    """A pipeline, declared once: the CLI, the engine and the report take what they need from it."""

    name: str  # in run ids and flow names
    config_model: type[BaseModel]  # its configuration; fields with ``cli`` metadata become flags of its run command
    build: Callable[[Any], list[Stage]]  # the stages for a validated configuration
    worker_imports: tuple[str, ...] = ()  # modules every worker imports as it joins (its tasks' code)
    version: str | None = None  # declared version of its code, part of its stages' fingerprints
    summary: Callable[[Path], str] | None = None  # headline text of a finished run, from its output folder
    report_section: Callable[..., Any] | None = None  # its own section of the HTML report
    description: str = ""  # help text of its ``sdpflow run NAME`` command
    read_summary: Callable[[Path], BaseModel] | None = None  # the typed summary of a finished run (``Run.summary``)


def lazy_build(module: str, function: str) -> Callable[[Any], list[Stage]]:
    """A stage builder imported on first use, so that the module declaring a pipeline stays light."""

    def build(config: Any) -> list[Stage]:
        return getattr(importlib.import_module(module), function)(config)

    build.__qualname__ = f"lazy_build({module}:{function})"
    return build


def _registered() -> dict[str, EntryPoint]:
    """The registered pipelines' entry points by name (the first one installed wins a duplicate name)."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def available_pipelines() -> list[str]:
    """The names of the registered pipelines, sorted (none of them is imported)."""
    return sorted(_registered())


def get_pipeline(name: str) -> Pipeline:
    """A registered pipeline by name, or an importable one given as ``module:ATTRIBUTE``."""
    entry_point = _registered().get(name)
    if entry_point is not None:
        try:
            pipeline = entry_point.load()
        except (ImportError, AttributeError) as error:
            raise InputError(f"pipeline {name!r} ({entry_point.value}) cannot be imported: {error}; "
                             "reinstall the package that registers it") from None
        return _checked(pipeline, f"pipeline {name!r} ({entry_point.value})")
    if ":" in name:
        try:
            pipeline = import_object(name)
        except (ImportError, AttributeError) as error:
            raise InputError(f"pipeline {name!r} cannot be imported: {error}") from None
        return _checked(pipeline, repr(name))
    known = ", ".join(available_pipelines()) or "none registered: reinstall sdpflow (make install)"
    raise InputError(f"unknown pipeline {name!r}: choose one of {known}, or name yours as module:ATTRIBUTE")


def _checked(pipeline: Any, what: str) -> Pipeline:
    if not isinstance(pipeline, Pipeline):
        raise InputError(f"{what} is a {type(pipeline).__name__}, not an sdpflow Pipeline: point it at one")
    return pipeline
