"""Flows: which stages a pipeline has, where they run, and how a run starts or resumes.

Each pipeline is a :class:`Pipeline` value (:mod:`sdpflow.pipelines.registry`): a name, its
configuration model, a function building its stages from a validated configuration, and what
the CLI and the workers need. Pipelines are registered through the ``sdpflow.pipelines``
entry-point group (the built-in ones too; see pyproject.toml); a pipeline of your own can also
be named as ``package.module:ATTRIBUTE``, and resumes the same way.
"""

__all__ = ["Pipeline", "available_pipelines", "get_pipeline", "resume_run", "start_run"]

_MODULES = {"Pipeline": "registry", "available_pipelines": "registry", "get_pipeline": "registry",
            "resume_run": "runner", "start_run": "runner"}


def __getattr__(name: str):
    # Lazy: a worker that unpickles a task of one pipeline module should not import them all.
    if name in _MODULES:
        import importlib

        return getattr(importlib.import_module(f"sdpflow.pipelines.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'sdpflow.pipelines' has no attribute {name!r}")
