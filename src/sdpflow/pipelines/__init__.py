"""Flows: which stages a pipeline has, where they run, and how a run starts or resumes.

Each pipeline is a :class:`Pipeline`: a name, its configuration model (from
:mod:`sdpflow.config`) and a function building its stages from a validated configuration.
Built-in pipelines are listed in :data:`PIPELINES`; a pipeline of your own can be named as
``package.module:ATTRIBUTE`` (an importable :class:`Pipeline`), and resumes the same way.
"""

from sdpflow.pipelines.runner import PIPELINES, Pipeline, get_pipeline, resume_run, start_run

__all__ = ["PIPELINES", "Pipeline", "get_pipeline", "resume_run", "start_run"]
