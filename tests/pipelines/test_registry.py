"""The pipeline registry: entry-point names, lookups, and what a lookup imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sdpflow.errors import InputError
from sdpflow.pipelines import Pipeline, available_pipelines, get_pipeline


def test_builtins_are_registered_by_entry_point():
    assert {"ical", "continuum", "demo-flow"} <= set(available_pipelines())
    ical = get_pipeline("ical")
    assert isinstance(ical, Pipeline) and ical.name == "ical" and ical.summary is not None and ical.description
    assert get_pipeline("demo-flow").config_model.__name__ == "DemoFlowConfig"


def test_module_attribute_and_errors():
    toy = get_pipeline("tests.engine.toy_pipeline:TOY")
    assert toy.name == "toy" and toy.version is None and toy.report_section is None
    with pytest.raises(InputError, match="unknown pipeline 'nope'.*demo-flow.*module:ATTRIBUTE"):
        get_pipeline("nope")
    with pytest.raises(InputError, match="cannot be imported"):
        get_pipeline("no_such_module_here:THING")
    with pytest.raises(InputError, match="is a function, not an sdpflow Pipeline"):
        get_pipeline("tests.engine.toy_pipeline:build")


def test_looking_up_an_imaging_pipeline_imports_no_science():
    code = (
        "import sys\n"
        "from sdpflow.pipelines import available_pipelines, get_pipeline\n"
        "available_pipelines(); get_pipeline('ical'); get_pipeline('continuum')\n"
        "heavy = {'casacore', 'ducc0', 'numba', 'astropy', 'h5py', 'matplotlib', 'scipy'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m == 'sdpflow.pipelines.imaging.flow'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_imaging_summary_is_the_headline(tmp_path):
    from sdpflow.pipelines.imaging import imaging_summary
    from sdpflow.pipelines.imaging.summary import ImagingSummary, read_summary, write_summary

    assert imaging_summary(tmp_path) == ""  # no summary.json yet (e.g. --until-stage)
    summary = ImagingSummary(
        pipeline="continuum", ms="/data/obs.ms", image={"size": [512, 512], "cell_arcsec": 20.0, "channels_out": 1},
        chunks=2, cycles=[{"cycle": 1, "stop_reason": "threshold"}], major_cycles_run=1, stop_reason="threshold",
        restoring_beam={"bmaj_arcsec": 61.24, "bmin_arcsec": 55.01, "bpa_deg": 12.0}, peak_jy_per_beam=1.23456,
        noise_jy_per_beam=0.00123, rms_residual_jy_per_beam=0.0013, dynamic_range=1003.7)
    write_summary(tmp_path / "summary.json", summary)
    assert read_summary(tmp_path) == summary
    assert imaging_summary(tmp_path) == (
        "peak 1.235 Jy/beam, noise 0.00123 Jy/beam, dynamic range 1004, beam 61.2″×55.0″ after 1 major cycle "
        f"(the last stopped by threshold)\nreport: {tmp_path.resolve() / 'report.html'}")
