"""WSClean's spellings on the command line: single-dash options, defaults in --help, commented config show."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
import yaml

from sdpflow.cli import app
from sdpflow.cli.options import accept_single_dash, model_options
from sdpflow.config import default_values, defaults_yaml
from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, IcalConfig
from sdpflow.errors import InputError


def rewrite(*words: str) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    return accept_single_dash(typer.main.get_command(app), list(words), notes.append), notes


def test_single_dash_long_options_become_double_dash_with_one_note_each():
    words, notes = rewrite("run", "continuum", "-size", "512", "512", "-niter", "100", "-weight", "briggs", "0.5")
    assert words == ["run", "continuum", "--size", "512", "512", "--niter", "100", "--weight", "briggs", "0.5"]
    assert notes == ["note: -size is WSClean's spelling; sdpflow's is --size",
                     "note: -niter is WSClean's spelling; sdpflow's is --niter",
                     "note: -weight is WSClean's spelling; sdpflow's is --weight"]


def test_short_options_and_option_values_are_left_alone():
    words, notes = rewrite("-vv", "--db", "-odd.db", "run", "ical", "-o", "-size", "-c", "x.yaml",
                           "--set", "imaging.scale=-1", "-mgain=0.9")
    assert words == ["-vv", "--db", "-odd.db", "run", "ical", "-o", "-size", "-c", "x.yaml",
                     "--set", "imaging.scale=-1", "--mgain=0.9"]
    assert len(notes) == 1


def test_an_unknown_single_dash_option_is_one_error_with_the_nearest_option():
    with pytest.raises(InputError, match=r"no such option -sizee for 'sdpflow run continuum'; did you mean --size\?"):
        rewrite("run", "continuum", "-sizee", "512", "512")


def test_the_command_line_prints_the_note_and_runs_on(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run",
                             "continuum", "-ms", "missing.ms", "-niter", "5"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[:2] == ["note: -ms is WSClean's spelling; sdpflow's is --ms",
                         "note: -niter is WSClean's spelling; sdpflow's is --niter"]
    assert "missing.ms: no such MeasurementSet" in lines[-1]


def test_help_shows_each_default_and_wsclean_s_where_it_differs():
    helps = {flag: parameter.annotation.__metadata__[0].help for flag, _, parameter in model_options(IcalConfig)}
    assert helps["--niter"].endswith("(default: 1000; WSClean's: 0, no cleaning)")
    assert helps["--weight"].endswith("(default: briggs 0; WSClean's: uniform)")
    assert helps["--mgain"].endswith("(default: 0.8; WSClean's: 1.0, no major cycles)")
    assert helps["--gain"].endswith("(default: 0.1)")  # as WSClean's
    assert helps["--size"].endswith("(default: 512 512)")
    assert helps["--G-first-selfcal"].endswith("(default: 3)")  # the section's default, not the field's
    assert helps["--wstacking"].endswith("(default: on)")
    assert all("(default: " in text for text in helps.values())


def test_config_show_comments_every_key_with_its_description():
    text = defaults_yaml(ContinuumConfig)
    assert yaml.safe_load(text) == default_values(ContinuumConfig)
    lines = text.splitlines()
    niter = lines.index("  niter: 1000")
    comment = []  # the comment lines above the key, wrapped: together they are the field's description
    for line in reversed(lines[:niter]):
        if not line.startswith("  # "):
            break
        comment.insert(0, line[4:])
    assert " ".join(comment) == DeconvolutionConfig.model_fields["niter"].description
    assert lines[lines.index("imaging:") - 1] == "# How visibilities become images (ducc0 w-gridder)."
    keys = [index for index, line in enumerate(lines) if not line.lstrip().startswith("#")
            and ":" in line and not line.lstrip().startswith("-")]
    assert all(lines[index - 1].lstrip().startswith("#") for index in keys if index > 0)
