"""Pipelines from the registry on the command line: a third party's, the README's own flow, light imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

#: A pipeline in a package of its own, registered through the entry-point group only.
THIRD_PARTY_MODULE = '''
from pydantic import Field

from sdpflow.config.base import Section
from sdpflow.engine.flow import Stage
from sdpflow.pipelines import Pipeline


class GreetConfig(Section):
    who: str = Field("world", description="whom to greet", json_schema_extra={"cli": "--who"})


def build(config):
    def greet(ctx):
        ctx.output("greeting.txt").write_text(f"hello {config.who}")
    return [Stage("greet", greet, outputs=("greeting.txt",), config=config.model_dump())]


GREET = Pipeline("greet", GreetConfig, build, description="Greet someone: a third-party pipeline.",
                 summary=lambda out_dir: "said " + (out_dir / "greeting.txt").read_text())
'''

#: Makes every import of the radio science's packages fail, in the driver and in any worker it starts.
BLOCKER = '''
import sys

BLOCKED = {"casacore", "ducc0", "numba", "astropy", "h5py", "matplotlib", "scipy"}


class BlockRadioScience:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: a user flow must not import it")
        return None


sys.meta_path.insert(0, BlockRadioScience())
'''


def sdpflow(*args: str, cwd: Path = REPO, pythonpath: Path | None = None, db: Path | None = None):
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "sdpflow.cli"] + (["--db", f"sqlite:///{db}"] if db else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=cwd, env=env)


def test_third_party_pipeline_is_listed_and_runs(tmp_path):
    (tmp_path / "thirdparty_demo.py").write_text(THIRD_PARTY_MODULE)
    dist_info = tmp_path / "thirdparty_demo-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-demo\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[sdpflow.pipelines]\ngreet = thirdparty_demo:GREET\nbroken = thirdparty_missing:GONE\n")

    listed = sdpflow("run", "--help", pythonpath=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"greet\s+Greet someone: a third-party pipeline\.", listed.stdout)
    assert "ical" in listed.stdout and "demo-flow" in listed.stdout
    assert "--who" in sdpflow("run", "greet", "--help", pythonpath=tmp_path).stdout
    assert re.search(r"broken\s+\(cannot be loaded: pipeline 'broken'", listed.stdout)  # listed, not in the way
    broken = sdpflow("run", "broken", "--out", str(tmp_path / "never"), pythonpath=tmp_path, db=tmp_path / "runs.db")
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1
    assert "thirdparty_missing" in broken.stderr and not (tmp_path / "never").exists()

    result = sdpflow("run", "greet", "--out", str(tmp_path / "out"), "--who", "tests", pythonpath=tmp_path,
                     db=tmp_path / "runs.db")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "greeting.txt").read_text() == "hello tests"
    assert "said hello tests" in result.stdout
    assert re.search(r"^run \S+-greet-[0-9a-f]{4} completed", result.stdout, re.M)


def _readme_flow(folder: Path) -> list[str]:
    """Writes the README's myflows.py into ``folder``; returns its `sdpflow run flow ...` words."""
    readme = (REPO / "README.md").read_text()
    (folder / "myflows.py").write_text(readme.split("# myflows.py\n", 1)[1].split("```", 1)[0])
    line = next(line for line in readme.splitlines() if line.startswith("sdpflow run flow myflows:PIPELINE"))
    return line.split()[1:]


def test_readme_flow_runs_without_the_radio_packages(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    probe = subprocess.run([sys.executable, "-c", "import scipy"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(blocker)})
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker is in force

    for words in (["--help"], ["run", "--help"], ["run", "ical", "--help"], ["config", "show", "continuum"]):
        shown = sdpflow(*words, pythonpath=blocker)
        assert shown.returncode == 0, f"sdpflow {' '.join(words)}: {shown.stderr}"

    work = tmp_path / "work"
    work.mkdir()
    result = sdpflow(*_readme_flow(work), cwd=work, pythonpath=blocker, db=tmp_path / "runs.db")
    assert result.returncode == 0, result.stderr
    assert (work / "results" / "double.txt").read_text() == "63"


def test_own_flow_config_and_run_id(tmp_path):
    """``config show|check`` take ``myflows:PIPELINE``; its run id has the pipeline's name, and it resumes."""
    words = _readme_flow(tmp_path)
    shown = sdpflow("config", "show", "myflows:PIPELINE", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == {"factor": 2}
    (tmp_path / "good.yaml").write_text("factor: 5\n")
    checked = sdpflow("config", "check", "myflows:PIPELINE", "good.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "valid myflows:PIPELINE configuration" in checked.stdout
    (tmp_path / "bad.yaml").write_text("factr: 5\n")
    bad = sdpflow("config", "check", "myflows:PIPELINE", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and "factr" in bad.stderr and "sdpflow config show myflows:PIPELINE" in bad.stderr

    db = tmp_path / "runs.db"
    result = sdpflow(*words, cwd=tmp_path, db=db)
    assert result.returncode == 0, result.stderr
    run_id = re.search(r"^run (\S+) completed", result.stdout, re.M).group(1)
    assert re.fullmatch(r"\d{8}-\d{6}-double-[0-9a-f]{4}", run_id)
    from sdpflow.store import RunStore

    assert RunStore(f"sqlite:///{db}").get_run(run_id)["pipeline"] == "myflows:PIPELINE"  # what resume looks up
    resumed = sdpflow("runs", "resume", run_id, cwd=tmp_path, db=db)
    assert resumed.returncode == 0 and "ran nothing" in resumed.stdout, resumed.stderr


def test_unknown_pipeline_is_one_line(tmp_path):
    result = sdpflow("config", "show", "nope")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown pipeline 'nope'" in result.stderr
