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
    import json

    from sdpflow.pipelines.imaging import imaging_summary

    assert imaging_summary(tmp_path) == ""  # no summary.json yet (e.g. --until-stage)
    (tmp_path / "summary.json").write_text(json.dumps({
        "peak_jy_per_beam": 1.23456, "noise_jy_per_beam": 0.00123, "dynamic_range": 1003.7,
        "restoring_beam": {"bmaj_arcsec": 61.24, "bmin_arcsec": 55.01}, "major_cycles_run": 1,
        "stop_reason": "threshold"}))
    assert imaging_summary(tmp_path) == (
        "peak 1.235 Jy/beam, noise 0.00123 Jy/beam, dynamic range 1004, beam 61.2″×55.0″ after 1 major cycle "
        f"(the last stopped by threshold)\nreport: {tmp_path.resolve() / 'report.html'}")
