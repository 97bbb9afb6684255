"""Flows: which stages a pipeline has, where they run, and how a run starts or resumes.

Each pipeline is a :class:`Pipeline`: a name, its configuration model (from
:mod:`sdpflow.config`) and a function building its stages from a validated configuration.
Built-in pipelines are listed in :data:`PIPELINES`; a pipeline of your own can be named as
``package.module:ATTRIBUTE`` (an importable :class:`Pipeline`), and resumes the same way.
"""

__all__ = ["PIPELINES", "Pipeline", "get_pipeline", "resume_run", "start_run"]


def __getattr__(name: str):
    # Lazy: a worker that unpickles a task of one pipeline module should not import them all.
    if name in __all__:
        from sdpflow.pipelines import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'sdpflow.pipelines' has no attribute {name!r}")
