"""The small built-in flow used to show and test the engine."""

from __future__ import annotations

from pydantic import Field

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig


class SquaresConfig(Section):
    """Stage ``squares``: sum of squares of ``count`` integers, in ``chunks`` Dask tasks."""

    count: int = Field(default=1000, ge=1, le=10**9, description="how many integers (at most 1e9: a demo)",
                       json_schema_extra={"cli": "--count"})
    chunks: int = Field(default=8, ge=1, le=100_000, description="how many tasks")


class ReportConfig(Section):
    """Stage ``report``: a text summary of the squares."""

    title: str = "sum of squares"


class DemoFlowConfig(Section):
    """A two-stage flow: compute on the cluster, then write a report."""

    squares: SquaresConfig = SquaresConfig()
    report: ReportConfig = ReportConfig()
    cluster: ClusterConfig = ClusterConfig()
