"""The ``sdpflow run`` command written into image headers gives back the run's configuration when typed."""

from __future__ import annotations

import shlex

import pytest

from sdpflow.cli import _run_app
from sdpflow.config.imaging import (
    CalibrationConfig,
    DeconvolutionConfig,
    IcalConfig,
    ImagingConfig,
    PartitionConfig,
    TermConfig,
)
from sdpflow.pipelines.imaging.headers import command_line


class Started(Exception):
    """Raised instead of starting the run: the configuration the command line gave is all we want."""


def test_the_header_command_gives_the_same_configuration(monkeypatch, tmp_path):
    config = IcalConfig(
        ms="obs with space.ms",
        imaging=ImagingConfig(size=(96, 64), scale="30asec", weight="briggs -1", wstacking=False, threads_per_task=2,
                              pol="IQ"),
        deconvolution=DeconvolutionConfig(niter=10, auto_threshold=None, threshold=0.01, scales=[0, 4]),
        partition=PartitionConfig(time_chunks=2),
        calibration=CalibrationConfig(context="TGB", G=TermConfig(first_selfcal=2, timeslice=60.0)),
        apply_solutions="gains.h5parm",
    )
    given = {}

    def capture(pipeline, config, out, **kwargs):
        given["config"] = config
        raise Started

    monkeypatch.setattr("sdpflow.pipelines.runner.start_run", capture)
    words = shlex.split(command_line("ical", config))
    assert words[:3] == ["sdpflow", "run", "ical"] and "--no-wstacking" in words
    with pytest.raises(Started):
        _run_app([*words[1:], "--out", str(tmp_path / "out")])
    assert given["config"] == config
