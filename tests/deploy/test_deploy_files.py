"""Deploy files agree with sdpflow: the image of this version, the manifests its kubernetes backend
writes, the worker environment, the run database outside the containers. The tools that read
the files check them in test_deploy_validators.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from sdpflow import __version__
from sdpflow.config.cluster import ClusterConfig, KubernetesConfig
from sdpflow.engine.backends.kubernetes import IMAGE_REPOSITORY, cluster_resource

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "scheduler", "worker", "pipeline"}
    assert {s["image"] for name, s in services.items() if name != "db"} == {IMAGE}
    assert services["scheduler"]["ports"] == ["8786:8786", "8787:8787"]
    assert "${SDPFLOW_WORKERS:-2}" == services["worker"]["deploy"]["replicas"]
    assert "results:/results" in services["worker"]["volumes"] and "results:/results" in services["pipeline"]["volumes"]
    assert services["pipeline"]["deploy"]["restart_policy"]["condition"] == "none"
    assert "overlay" in compose["networks"]["sdpflow"]["driver"] and compose["networks"]["sdpflow"]["attachable"]
    assert "results" in compose["volumes"]
    script = services["pipeline"]["command"][-1]
    assert script.index("sdpflow simulate") < script.index("sdpflow run ical")
    environment = services["pipeline"]["environment"]
    assert environment["SDPFLOW_SCHEDULER"] == "tcp://scheduler:8786"
    assert environment["SDPFLOW_DB"].startswith("postgresql+psycopg://sdpflow@db:5432/")  # outlives the container
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/sdpflow_db_password"


def test_dockerfile_and_apptainer_name_this_version():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"ARG SDPFLOW_VERSION={__version__}" in dockerfile
    assert f"-t {IMAGE} ." in dockerfile
    assert re.search(r'^ENTRYPOINT \["tini", "--"\]$', dockerfile, re.M)
    definition = (DEPLOY / "apptainer" / "sdpflow.def").read_text()
    assert f"org.opencontainers.image.version {__version__}" in definition
    assert "%files" in definition and "ghcr.io" not in definition  # built from this tree, not a registry


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
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}
    assert env["SDPFLOW_SCHEDULER"] == f"tcp://{cluster['metadata']['name']}-scheduler:8786"
    service, database = load_all(DEPLOY / "kubernetes" / "rundb.yaml")
    assert env["SDPFLOW_DB"] == f"postgresql+psycopg://sdpflow@{service['metadata']['name']}:5432/sdpflow"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "sdpflow-db", "key": "password"}}


def test_slurm_cluster_yaml_validates_and_scripts_parse():
    data = yaml.safe_load((DEPLOY / "slurm" / "cluster.yaml").read_text())
    config = ClusterConfig.model_validate(data["cluster"])
    assert config.spec == "slurm" and config.adapt_kwargs.maximum_jobs == 16
    for script in (DEPLOY / "slurm").glob("*.sbatch"):
        text = script.read_text()
        assert "#SBATCH --time=" in text
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_workers_started_by_deploy_files_get_the_worker_environment():
    """The workers these files start (not sdpflow) get the environment sdpflow gives its own."""
    from sdpflow.engine.backends import WORKER_ENVIRONMENT

    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    srun = (DEPLOY / "slurm" / "run-srun-workers.sbatch").read_text()
    for name, value in WORKER_ENVIRONMENT.items():
        assert compose["services"]["worker"]["environment"][name] == value
        assert re.search(rf"^export {name}={value}\b", srun, re.M)
