"""Run records: ``runs list/show --json`` (stable keys), the configuration and summary in ``runs show``,
and ``config.yaml`` in each run's folder (loadable again, secrets left out, never over a foreign file)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sdpflow.cli.options import fill_optional_values
from sdpflow.config import cli_options, load_config
from sdpflow.errors import InputError
from sdpflow.pipelines import start_run
from sdpflow.pipelines.run_records import RUN_KEYS
from sdpflow.pipelines.runner import CONFIG_FILE_NAME
from sdpflow.store import RunStore
from tests.engine.fanout_pipeline import SquaresConfig

REPO = Path(__file__).resolve().parents[2]
REF = "tests.engine.fanout_pipeline:SQUARES"
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One completed run of the fan-out toy pipeline, with a secret in its configuration, its dashboard on a
    chosen port and Dask's performance report."""
    root = tmp_path_factory.mktemp("records")
    config = SquaresConfig(count=7)
    config.cluster.kubernetes.env = {"AWS_SECRET_ACCESS_KEY": SECRET, "REGION": "eu-west"}
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        config.cluster.dashboard_address = f"127.0.0.1:{probe.getsockname()[1]}"
    config.cluster.dask_report = True
    db = f"sqlite:///{root / 'runs.db'}"
    result = start_run(REF, config, root / "out", store=RunStore(db))
    return db, result, config


def cli(db: str, *args: str):
    """The command line in this process (its output in ``.stdout``); ``runs show --json`` below runs it whole."""
    from typer.testing import CliRunner

    from sdpflow.cli import app

    return CliRunner().invoke(app, ["--db", db, *fill_optional_values(list(args))], env={"COLUMNS": "200"})


def test_runs_list_and_show_as_json(finished):
    db, result, _ = finished
    listed = cli(db, "runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert [tuple(run) for run in runs] == [RUN_KEYS]
    assert runs[0]["id"] == result.run_id and runs[0]["status"] == "completed"
    assert runs[0]["started"].endswith("+00:00") and 0 < runs[0]["duration_s"] < 120

    shown = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", db, "runs", "show", result.run_id[:-2],
                            "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert tuple(run)[:len(RUN_KEYS)] == RUN_KEYS and run["id"] == result.run_id
    assert SECRET not in shown.stdout
    assert run["config"]["cluster"]["kubernetes"]["env"] == {"AWS_SECRET_ACCESS_KEY": "<redacted>", "REGION": "eu-west"}
    assert [(stage["name"], stage["status"], stage["items"]) for stage in run["stages"]] == [
        ("squares", "completed", {"completed": 7}), ("summary", "completed", {})]
    assert run["summary"] == {"count": 7}  # the pipeline's read_summary of summary.json
    product = {item["path"]: item for item in run["products"]}["summary.json"]
    assert product["checksum"] == "sha256:" + hashlib.sha256((result.out_dir / "summary.json").read_bytes()).hexdigest()

    text = cli(db, "runs", "show", result.run_id)
    assert "AWS_SECRET_ACCESS_KEY: <redacted>" in text.stdout and SECRET not in text.stdout
    assert "summary\n  count: 7" in text.stdout


def test_config_yaml_loads_again_without_its_secrets(finished):
    _, result, config = finished
    text = (result.out_dir / CONFIG_FILE_NAME).read_text()
    assert SECRET not in text and "Left out, as secrets (give them again): cluster.kubernetes.env.AWS_SECRET_ACCESS_KEY" in text
    again = load_config(SquaresConfig, result.out_dir / CONFIG_FILE_NAME)
    expected = config.model_copy(deep=True)
    expected.cluster.kubernetes.env = {"REGION": "eu-west"}
    assert again == expected


def test_dashboard_address_and_dask_report(finished):
    db, result, config = finished
    opened = [event for event in RunStore(db).get_events(result.run_id) if event["event"] == "cluster-opened"]
    assert opened[0]["detail"]["dashboard"].startswith(f"http://{config.cluster.dashboard_address}/")
    report = (result.out_dir / "dask-report.html").read_text()
    assert "Dask Performance Report" in report and "Bokeh" in report
    assert cli_options(SquaresConfig)["--dashboard-address"][0] == "cluster.dashboard_address"
    assert cli_options(SquaresConfig)["--dask-report"][0] == "cluster.dask_report"


def test_config_yaml_never_replaces_a_file_sdpflow_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / CONFIG_FILE_NAME).write_text("mine: true\n")
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(InputError, match=r"config.yaml was not written by sdpflow"):
        start_run(REF, SquaresConfig(count=2), out, store=store, overwrite=True)
    assert (out / CONFIG_FILE_NAME).read_text() == "mine: true\n" and store.list_runs() == []


def test_a_bare_json_option_means_standard_output():
    assert fill_optional_values(["runs", "show", "R", "--json"]) == ["runs", "show", "R", "--json", "-"]
    assert fill_optional_values(["runs", "list", "--json", "-n", "3"]) == ["runs", "list", "--json", "-", "-n", "3"]
    assert fill_optional_values(["runs", "show", "R", "--json", "f.json"]) == ["runs", "show", "R", "--json", "f.json"]
    assert fill_optional_values(["runs", "show", "R", "--json", "-"]) == ["runs", "show", "R", "--json", "-"]
