"""Deploy files that cannot run here (Docker, Kubernetes, Apptainer, a real HPC batch system):
they parse, name the image of this version, and every sdpflow command they run exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdpflow import __version__
from sdpflow.config.cluster import ClusterConfig, KubernetesConfig
from sdpflow.engine.backends.kubernetes import IMAGE_REPOSITORY, cluster_resource

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
SDPFLOW = str(Path(sys.executable).parent / "sdpflow")
#: Pipelines the deploy files run that are being written on other branches; the test
#: fails for them as soon as they exist but their --help does not work.


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


#: Commands with subcommands: `sdpflow run ical` names two words, `sdpflow simulate` one.
GROUPS = {"run", "cluster", "pool", "runs", "config"}
COMMAND = re.compile(r"(?:^|[\s;&|(\"'])sdpflow(?:\s+--(?:cluster|db)[ =]\S+)*\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?")


def sdpflow_commands() -> set[str]:
    """The sdpflow subcommands (e.g. 'run ical', 'cluster check') that deploy/ files run
    (comments and how-to prose left out)."""
    found = set()
    for path in DEPLOY.rglob("*"):
        if not path.is_file() or path.suffix == ".md":
            continue
        for line in path.read_text().splitlines():
            if line.strip().startswith("#"):
                continue
            for first, second in COMMAND.findall(line):
                found.add(f"{first} {second}" if first in GROUPS and second else first)
    return found


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"scheduler", "worker", "pipeline"}
    assert {s["image"] for s in services.values()} == {IMAGE}
    assert services["scheduler"]["ports"] == ["8786:8786", "8787:8787"]
    assert "${SDPFLOW_WORKERS:-2}" == services["worker"]["deploy"]["replicas"]
    assert "results:/results" in services["worker"]["volumes"] and "results:/results" in services["pipeline"]["volumes"]
    assert services["pipeline"]["deploy"]["restart_policy"]["condition"] == "none"
    assert "overlay" in compose["networks"]["sdpflow"]["driver"] and compose["networks"]["sdpflow"]["attachable"]
    assert "results" in compose["volumes"]
    script = services["pipeline"]["command"][-1]
    assert script.index("sdpflow simulate") < script.index("sdpflow run ical")
    assert services["pipeline"]["environment"]["SDPFLOW_SCHEDULER"] == "tcp://scheduler:8786"


def test_dockerfile_and_apptainer_name_this_version():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"ARG SDPFLOW_VERSION={__version__}" in dockerfile
    assert f"-t {IMAGE} ." in dockerfile
    assert re.search(r'^ENTRYPOINT \["tini", "--"\]$', dockerfile, re.M)
    definition = (DEPLOY / "apptainer" / "sdpflow.def").read_text()
    assert f"From: {IMAGE}" in definition


def test_kubernetes_manifests_match_the_backend():
    cluster, = load_all(DEPLOY / "kubernetes" / "daskcluster.yaml")
    config = KubernetesConfig(name="sdpflow", n_workers=4, cpu="2", memory="8Gi", pvc="sdpflow-results",
                              mount_path="/results")
    assert cluster == cluster_resource(config)
    pvc, = load_all(DEPLOY / "kubernetes" / "pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == "sdpflow-results"
    job, = load_all(DEPLOY / "kubernetes" / "pipeline-job.yaml")
    pod = job["spec"]["template"]["spec"]
    assert job["kind"] == "Job" and pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["image"] == IMAGE
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "sdpflow-results"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["SDPFLOW_SCHEDULER"] == f"tcp://{cluster['metadata']['name']}-scheduler:8786"


def test_slurm_cluster_yaml_validates_and_scripts_parse():
    data = yaml.safe_load((DEPLOY / "slurm" / "cluster.yaml").read_text())
    config = ClusterConfig.model_validate(data["cluster"])
    assert config.spec == "slurm" and config.adapt_kwargs.maximum_jobs == 16
    for script in (DEPLOY / "slurm").glob("*.sbatch"):
        text = script.read_text()
        assert "#SBATCH --time=" in text
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_commands_found():
    assert {"cluster check", "simulate", "run ical"} <= sdpflow_commands()


@pytest.mark.parametrize("command", sorted(sdpflow_commands()))
def test_every_sdpflow_command_exists(command):
    result = subprocess.run([SDPFLOW, *command.split(), "--help"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_workers_started_by_deploy_files_get_the_worker_environment():
    """The workers these files start (not sdpflow) get the environment sdpflow gives its own."""
    from sdpflow.engine.backends import WORKER_ENVIRONMENT

    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    srun = (DEPLOY / "slurm" / "run-srun-workers.sbatch").read_text()
    for name, value in WORKER_ENVIRONMENT.items():
        assert compose["services"]["worker"]["environment"][name] == value
        assert re.search(rf"^export {name}={value}\b", srun, re.M)
