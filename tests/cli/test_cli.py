"""The command line as a user meets it: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sdpflow.store import RunStore

REPO = Path(__file__).resolve().parents[2]


def sdpflow(*args: str, db: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sdpflow"] + (["--db", db] if db else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=kwargs.get("cwd", REPO),
                          env={**os.environ, **kwargs.get("env", {})})


@pytest.mark.parametrize("args", [[], ["runs"], ["config"], ["run"], ["run", "demo-flow"], ["runs", "resume"]])
def test_help_at_every_level(args):
    result = sdpflow(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_config_show_prints_valid_yaml():
    result = sdpflow("config", "show", "demo-flow")
    assert result.returncode == 0
    assert yaml.safe_load(result.stdout)["squares"]["count"] == 1000


def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("squares:\n  count: 10\n  chunkz: 2\n")
    result = sdpflow("run", "demo-flow", "--out", str(tmp_path / "out"), "--config", str(bad),
                     db=f"sqlite:///{tmp_path / 'runs.db'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "squares.chunkz" in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_unreachable_database_is_one_line_without_password(tmp_path):
    result = sdpflow("runs", "list", db="postgresql://me:hunter2@127.0.0.1:9/none")
    assert result.returncode == 3
    assert "hunter2" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: the password in --db is visible")  # then the error


def test_verbose_shows_traceback(tmp_path):
    result = sdpflow("-v", "runs", "show", "no-such-run", db=f"sqlite:///{tmp_path / 'runs.db'}")
    assert result.returncode == 2 and "Traceback" in result.stderr and "no run 'no-such-run'" in result.stderr


def test_demo_flow_runs_lists_shows_and_resumes(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    result = sdpflow("--cluster", "local:2", "run", "demo-flow", "--out", str(out), "--set", "squares.count=300", db=db)
    assert result.returncode == 0, result.stderr
    expected = sum(k * k for k in range(300))
    assert f"= {expected}" in result.stdout
    assert "Dask dashboard: http://127.0.0.1:" in result.stdout
    listed = sdpflow("runs", "list", db=db)
    assert listed.returncode == 0 and "demo-flow" in listed.stdout and "completed" in listed.stdout
    run_id = re.search(r"^run (\S+) completed", result.stdout, re.M).group(1)
    shown = sdpflow("runs", "show", run_id, db=db)
    assert shown.returncode == 0 and "squares.json" in shown.stdout
    resumed = sdpflow("runs", "resume", run_id, db=db)
    assert resumed.returncode == 0 and "ran nothing" in resumed.stdout


def test_readme_own_flow_runs_from_the_folder_it_is_in(tmp_path):
    """The README's myflows.py, beside the command, is found as ``myflows:PIPELINE`` and doubles 3 × 21."""
    readme = (REPO / "README.md").read_text()
    (tmp_path / "myflows.py").write_text(readme.split("# myflows.py\n", 1)[1].split("```", 1)[0])
    command = next(line for line in readme.splitlines() if line.startswith("sdpflow run flow myflows:PIPELINE"))
    result = sdpflow(*command.split()[1:], db=f"sqlite:///{tmp_path / 'runs.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "double.txt").read_text() == "63"


def test_editing_a_flows_code_reruns_its_stage_on_resume(tmp_path):
    """The README's example edited (``* 21`` -> ``* 1000``): resume reruns ``double`` with the new code."""
    readme = (REPO / "README.md").read_text()
    source = readme.split("# myflows.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "myflows.py").write_text(source)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    first = sdpflow("run", "flow", "myflows:PIPELINE", "--out", "results", "--set", "factor=3", db=db, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = re.search(r"^run (\S+) completed", first.stdout, re.M).group(1)
    unchanged = sdpflow("runs", "resume", run_id, db=db, cwd=tmp_path)
    assert "ran nothing; skipped double" in " ".join(unchanged.stdout.split())
    (tmp_path / "myflows.py").write_text(source.replace("* 21", "* 1000"))
    edited = sdpflow("runs", "resume", run_id, db=db, cwd=tmp_path)
    assert edited.returncode == 0, edited.stderr
    assert "ran double" in " ".join(edited.stdout.split())
    assert (tmp_path / "results" / "double.txt").read_text() == "3000"


def test_resume_checks_sizes_and_times_and_verify_rehashes(tmp_path):
    """An output rewritten with the same size and time is only caught by --verify."""
    readme = (REPO / "README.md").read_text()
    (tmp_path / "myflows.py").write_text(readme.split("# myflows.py\n", 1)[1].split("```", 1)[0])
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    first = sdpflow("run", "flow", "myflows:PIPELINE", "--out", "results", "--set", "factor=3", db=db, cwd=tmp_path)
    run_id = re.search(r"^run (\S+) completed", first.stdout, re.M).group(1)
    product = tmp_path / "results" / "double.txt"
    stat = product.stat()
    product.write_text("64")  # same size
    os.utime(product, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    quick = sdpflow("runs", "resume", run_id, db=db, cwd=tmp_path)
    assert "ran nothing" in quick.stdout and product.read_text() == "64"
    verified = sdpflow("runs", "resume", run_id, "--verify", db=db, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "ran double" in " ".join(verified.stdout.split()) and product.read_text() == "63"


@pytest.mark.parametrize("spec, code, text", [
    ("bogus", 2, "unknown cluster spec 'bogus'"), ("local:0", 2, "at least 1"), ("local:abc", 2, "number of workers"),
    ("tcp://127.0.0.1", 2, "has no port"), ("tcp://127.0.0.1:9", 3, "cannot reach the Dask scheduler"),
])
def test_bad_or_unreachable_cluster_fails_at_once_and_records_nothing_wrong(tmp_path, spec, code, text):
    """A bad spec is exit 2, an unreachable scheduler exit 3: both before the output folder is made or a run recorded."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    started = time.monotonic()
    result = sdpflow("--cluster", spec, "run", "demo-flow", "--out", str(tmp_path / "out"),
                     "--set", "cluster.connect_timeout=3", db=db)
    assert result.returncode == code, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    assert RunStore(db).list_runs() == []
    assert not (tmp_path / "out").exists()


def test_a_stray_module_in_the_current_folder_does_not_replace_an_installed_package(tmp_path):
    """A `bokeh.py` beside the user's flow is not imported in place of bokeh (the scheduler's dashboard)."""
    (tmp_path / "clusterflow.py").write_text(
        "from sdpflow.config.base import Section\nfrom sdpflow.config.cluster import ClusterConfig\n"
        "from sdpflow.engine.flow import Stage\nfrom sdpflow.pipelines import Pipeline\n\n"
        "class Config(Section):\n    cluster: ClusterConfig = ClusterConfig(spec='local:1')\n\n"
        "def build(config):\n    def add(ctx):\n"
        "        ctx.output('sum.txt').write_text(str(ctx.client.submit(sum, [20, 22]).result()))\n"
        "    return [Stage('add', add, outputs=('sum.txt',))]\n\nPIPELINE = Pipeline('add', Config, build)\n")
    (tmp_path / "bokeh.py").write_text("open('STRAY-CODE-RAN', 'w').close()\n")
    result = subprocess.run([str(Path(sys.executable).parent / "sdpflow"), "--db", f"sqlite:///{tmp_path / 'r.db'}",
                             "run", "flow", "clusterflow:PIPELINE", "--out", "results"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "sum.txt").read_text() == "42"
    assert not (tmp_path / "STRAY-CODE-RAN").exists()


def test_hostile_inputs_are_one_line_each(tmp_path):
    """An unusable database URL, an MS missing a subtable: one line, exit 2, nothing created."""
    bad_url = sdpflow("runs", "list", db="http://:::pw@@")
    assert bad_url.returncode == 2 and "is not valid: use sqlite:///PATH" in bad_url.stderr
    assert "Traceback" not in bad_url.stderr and "pw" not in bad_url.stderr.replace("password", "")
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation
    import shutil

    ms = simulate_observation(SimulateConfig(preset="small"), tmp_path / "sim" / "obs.ms").ms
    shutil.rmtree(ms / "ANTENNA")
    broken = sdpflow("run", "continuum", "--ms", str(ms), "--out", str(tmp_path / "out"),
                     db=f"sqlite:///{tmp_path / 'runs.db'}")
    assert broken.returncode == 2 and "its ANTENNA subtable is missing or unreadable" in broken.stderr
    assert "Traceback" not in broken.stderr and not (tmp_path / "out").exists()


def test_a_reference_antenna_the_ms_does_not_have_is_refused(tmp_path):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation

    ms = simulate_observation(SimulateConfig(preset="small"), tmp_path / "sim" / "obs.ms").ms
    result = sdpflow("run", "ical", "--ms", str(ms), "--out", str(tmp_path / "out"), "--refant", "999",
                     db=f"sqlite:///{tmp_path / 'runs.db'}")
    assert result.returncode == 2 and "--refant 999" in result.stderr and "has antennas 0.." in result.stderr
    assert not (tmp_path / "out").exists()
