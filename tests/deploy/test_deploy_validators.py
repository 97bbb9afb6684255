"""Deploy files checked by the tools that read them: `docker stack config`, `docker-compose config`,
`kubernetes-validate --strict`, the Dask operator's DaskCluster CRD schema (check-jsonschema),
shellcheck and `sbatch --test-only`; the pipeline scripts of the compose file and of the
Kubernetes Job run here for real. In CI (`.ci/run` installs the tools) a missing tool fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_service
from tests.deploy.commands import check_command, parse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker" / "compose.yaml"
NFS = DEPLOY / "docker" / "compose.nfs.yaml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of a validator: on PATH (Debian packages) or beside this Python (PyPI)."""
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    require_service(path is not None, name)
    return path


def run(*argv: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
                          env={**os.environ, **(env or {})})


def stack_config(*files: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`docker stack config` (the docker CLI alone, no daemon) of compose files, variables resolved."""
    args = [part for path in files for part in ("-c", str(path))]
    return run(tool("docker"), "stack", "config", *args, env={"SDPFLOW_DB_PASSWORD_FILE": "/dev/null", **(env or {})})


def test_docker_stack_config_accepts_the_stack():
    result = stack_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)
    assert set(stack["services"]) == {"db", "scheduler", "worker", "pipeline"}
    assert stack["services"]["pipeline"]["environment"]["SDPFLOW_MS"] == "/results/simulated/obs.ms"
    moved = stack_config(COMPOSE, env={"SDPFLOW_MS": "/data/night1.ms"})
    assert yaml.safe_load(moved.stdout)["services"]["pipeline"]["environment"]["SDPFLOW_MS"] == "/data/night1.ms"


def test_docker_stack_config_with_shared_storage():
    result = stack_config(COMPOSE, NFS, env={"SDPFLOW_NFS_SERVER": "nfs.example.org", "SDPFLOW_NFS_PATH": "/export/x"})
    assert result.returncode == 0, result.stderr
    results = yaml.safe_load(result.stdout)["volumes"]["results"]
    assert results["driver_opts"] == {"type": "nfs", "o": "addr=nfs.example.org,rw,nfsvers=4.1", "device": ":/export/x"}
    unset = stack_config(COMPOSE, NFS, env={"SDPFLOW_NFS_SERVER": "", "SDPFLOW_NFS_PATH": ""})
    assert unset.returncode != 0 and "set SDPFLOW_NFS_SERVER" in unset.stderr


def test_docker_compose_config_accepts_the_file():
    result = run(tool("docker-compose"), "-f", str(COMPOSE), "config",
                 env={"SDPFLOW_NETWORK_DRIVER": "bridge", "SDPFLOW_DB_PASSWORD_FILE": "/dev/null"})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["networks"]["sdpflow"]["driver"] == "bridge"


def test_docker_stack_config_rejects_what_swarm_rejects(tmp_path):
    """The validator is not a rubber stamp: the top-level `name:` that broke `docker stack deploy`."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("name: sdpflow\n" + COMPOSE.read_text())
    result = stack_config(broken)
    assert result.returncode != 0 and "name is not allowed" in result.stderr


KUBERNETES = sorted(path for path in (DEPLOY / "kubernetes").glob("*.yaml") if path.name != "daskcluster.yaml")


@pytest.mark.parametrize("manifest", KUBERNETES, ids=lambda path: path.name)
def test_kubernetes_manifests_validate_strictly(manifest):
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", str(manifest))
    assert result.returncode == 0, result.stdout + result.stderr
    documents = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    assert documents and all(doc["apiVersion"] and doc["kind"] for doc in documents)


def daskcluster_schema() -> dict:
    """The DaskCluster schema of the dask-kubernetes wheel's CRD, with its references resolved:
    its own definitions (templates.yaml) and the Kubernetes ones (PodSpec, ServiceSpec) from the
    strict schemas kubernetes-validate ships."""
    pytest.importorskip("dask_kubernetes")
    import dask_kubernetes
    import kubernetes_validate

    crds = Path(dask_kubernetes.__file__).parent / "operator" / "customresources"
    crd = yaml.safe_load((crds / "daskcluster.yaml").read_text())
    templates = yaml.safe_load((crds / "templates.yaml").read_text())["definitions"]
    schemas = sorted((Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema").glob("v*-local-strict"))
    kubernetes = json.loads((schemas[-1] / "_definitions.json").read_text())["$defs"]

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].split("#/definitions/")[1]
                return {"$ref": f"#/$defs/{name}"}
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **resolve(root),
            "$defs": {**kubernetes, **resolve(templates)}}


def test_daskcluster_matches_the_operator_crd(tmp_path):
    schema = tmp_path / "daskcluster.schema.json"
    schema.write_text(json.dumps(daskcluster_schema()))
    manifest = DEPLOY / "kubernetes" / "daskcluster.yaml"
    result = run(tool("check-jsonschema"), "--schemafile", str(schema), str(manifest))
    assert result.returncode == 0, result.stdout + result.stderr
    # The same check rejects a worker count that is not an integer.
    cluster = yaml.safe_load(manifest.read_text())
    cluster["spec"]["worker"]["replicas"] = "four"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cluster))
    result = run(tool("check-jsonschema"), "--schemafile", str(schema), str(bad))
    assert result.returncode != 0 and "replicas" in result.stdout


SCRIPTS = sorted([*DEPLOY.rglob("*.sbatch"), *DEPLOY.rglob("*.sh"), ROOT / ".ci" / "run",
                  *(ROOT / ".ci" / "services").glob("*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_shellcheck(script):
    result = run(tool("shellcheck"), "--shell=bash", str(script))
    assert result.returncode == 0, result.stdout


@pytest.mark.slurm
@pytest.mark.parametrize("script", sorted(DEPLOY.rglob("*.sbatch")), ids=lambda path: path.name)
def test_sbatch_accepts_the_script(script):
    """SLURM parses every #SBATCH line; the sizes are scaled down to fit the one-node CI cluster."""
    require_service(bool(os.environ.get("SDPFLOW_TEST_SLURM")), "SLURM (SDPFLOW_TEST_SLURM)")
    memory = "--mem=100M" if "#SBATCH --mem=" in script.read_text() else "--mem-per-cpu=100M"
    result = run("sbatch", "--test-only", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "--cpus-per-task=1",
                 memory, "--time=1", str(script), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "to start at" in result.stderr


def deploy_commands():
    """Every `sdpflow ...` command line in deploy files (comments left out)."""
    found = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.suffix != ".md" and path.name != "constraints.txt":
            for line in path.read_text().replace("\\\n", " ").splitlines():
                if not line.strip().startswith("#"):
                    for command in parse(line.replace("$$", "$")):
                        if not command.words or command.words[0].startswith("$"):  # `exec sdpflow "$@"`
                            continue
                        found.setdefault((command.global_options, command.words, command.options), command)
    return list(found.values())


def test_deploy_files_run_the_pipeline_on_an_ms():
    runs = [c for c in deploy_commands() if c.words[:1] == ("run",)]
    assert {c.words[:2] for c in runs} == {("run", "ical")}
    for command in runs:  # a config file or an MS: `run ical --out X` alone stops with "no MeasurementSet"
        assert {"--ms", "--config"} & set(command.options), command.line


@pytest.mark.parametrize("command", deploy_commands(), ids=lambda c: c.line.strip()[:70])
def test_deploy_command_exists_with_its_options(command):
    check_command(command)


def pipeline_scripts() -> dict[str, tuple[str, dict[str, str]]]:
    """The shell script and environment of the compose `pipeline` service (as `docker stack config`
    resolves them) and of the Kubernetes Job."""
    stack = yaml.safe_load(stack_config(COMPOSE).stdout)["services"]["pipeline"]
    job = yaml.safe_load((DEPLOY / "kubernetes" / "pipeline-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {"compose": (stack["command"][-1], stack["environment"]),
            "kubernetes": (container["args"][-1], {e["name"]: e["value"] for e in container["env"] if "value" in e})}


def test_pipeline_scripts_run_here(tmp_path):
    """What the containers run, run here: /results is a temporary folder, the run database SQLite,
    the cluster local. The compose script simulates an MS and runs ICAL on it; the Kubernetes one
    finds the MS there and runs ICAL again into the same (its own) output folder."""
    results, secret = tmp_path / "results", tmp_path / "db-password"
    results.mkdir()
    secret.write_text("not-used-by-sqlite\n")
    db = tmp_path / "runs.db"
    for name, (script, environment) in pipeline_scripts().items():
        script = script.replace("/run/secrets/sdpflow_db_password", str(secret)).replace("/results", str(results))
        env = {key: value.replace("/results", str(results)) for key, value in environment.items()}
        env.pop("SDPFLOW_SCHEDULER")  # the containers' scheduler; here a local cluster
        env.update(SDPFLOW_DB=f"sqlite:///{db}", SDPFLOW_CLUSTER="local:1",
                   PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        result = run("sh", "-c", script, env=env, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, f"{name}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        assert (results / "ical" / "restored.fits").stat().st_size > 0
    with sqlite3.connect(db) as connection:
        runs = connection.execute("select pipeline, status from runs order by started").fetchall()
    assert runs == [("ical", "completed"), ("ical", "completed")]


def requirement_closure(extras: set[str]) -> set[str]:
    """Normalised names of every distribution sdpflow[extras] needs, from installed metadata."""
    from packaging.requirements import Requirement

    def name(text: str) -> str:
        return re.sub(r"[-_.]+", "-", text).lower()

    needed, todo = set(), [("sdpflow", frozenset(extras))]
    while todo:
        distribution, wanted = todo.pop()
        for text in metadata.requires(distribution) or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": extra}) for extra in wanted or {""}):
                continue
            if name(requirement.name) == "sdpflow":
                todo.append(("sdpflow", frozenset(requirement.extras)))
            elif name(requirement.name) not in needed:
                needed.add(name(requirement.name))
                todo.append((requirement.name, frozenset(requirement.extras)))
    return needed


def test_image_is_pinned_unprivileged_and_built_from_the_tree():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"base {base} is not pinned to a patch release"
    assert re.search(r'pip install --no-cache-dir -c constraints\.txt "\.\[radio,cluster\]"', dockerfile)
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0"), "the image runs as root"
    assert dockerfile.rindex("USER ") > dockerfile.rindex("RUN ")
    # .dockerignore: everything out, then exactly what the Dockerfile copies back in.
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "**"
    copied = {source for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M) for source in sources.split()}
    assert {line[1:].rstrip("/") for line in ignore if line.startswith("!")} == copied
    assert {"**/*.egg-info", "**/__pycache__"} <= set(ignore)
    # Apptainer: the same base and the same constraints, from files of this tree.
    definition = (DEPLOY / "apptainer" / "sdpflow.def").read_text()
    assert f"From: {base}" in definition
    files = re.search(r"^%files\n(.*?)^%", definition, re.S | re.M).group(1).split("\n")
    sources = [line.split()[0] for line in files if line.strip()]
    assert "deploy/docker/constraints.txt" in sources and all((ROOT / source).exists() for source in sources)


def test_constraints_pin_every_dependency_of_the_image():
    pinned = {}
    for line in (DEPLOY / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    missing = requirement_closure({"radio", "cluster"}) - set(pinned)
    assert not missing, f"deploy/docker/constraints.txt lacks {sorted(missing)}: regenerate it (see its header)"


def test_files_the_deploy_files_point_to_exist():
    """A comment that sends the reader to `docs/clusters.md` needs that file."""
    pointed = {match.rstrip(".,:;)")
               for path in DEPLOY.rglob("*") if path.is_file() and path.name != "constraints.txt"
               for match in re.findall(r"(?<![\w/$])((?:docs|deploy|bench|tests|src|examples)/[\w./-]+)", path.read_text())}
    assert "deploy/docker/Dockerfile" in pointed
    made_by_the_user = {"deploy/docker/db-password.txt"}  # the secret (deploy/docker/README.md, step 2)
    missing = sorted(p for p in pointed - made_by_the_user if not (ROOT / p).exists())
    assert not missing, f"deploy files point to missing files: {missing}"
