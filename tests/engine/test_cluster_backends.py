"""The backend adapters' pure parts: walltimes, worker lifetimes, hostfiles, the Kubernetes resource."""

from __future__ import annotations

import os

import pytest

from sdpflow import __version__
from sdpflow.config.cluster import KubernetesConfig, SSHConfig
from sdpflow.engine.backends import backend_names, get_backend
from sdpflow.engine.backends.jobqueue import dask_env_lines, lifetime_args, walltime_seconds
from sdpflow.engine.backends.kubernetes import cluster_resource, default_image
from sdpflow.engine.backends.ssh import connect_options, read_hostfile, ssh_hosts
from sdpflow.errors import ConfigError


def test_registry_has_every_backend():
    assert backend_names() == ["address", "kubernetes", "local", "pbs", "slurm", "ssh"]
    assert get_backend("slurm").batch and not get_backend("local").batch


@pytest.mark.parametrize(
    "text, seconds",
    [("01:00:00", 3600), ("1-02:00:00", 93600), ("30:00", 1800), ("45", 2700), ("2-00:30", 174600), ("00:10:05", 605)],
)
def test_walltime_seconds(text, seconds):
    assert walltime_seconds(text) == seconds


def test_walltime_rejects_garbage():
    with pytest.raises(ConfigError, match="walltime 'one hour'"):
        walltime_seconds("one hour")


def test_lifetime_ends_before_walltime():
    # 10% margin of 1 h = 360 s: lifetime 3240 s +- 180 s, so at most 3420 s < 3600 s.
    assert lifetime_args("01:00:00", None) == ["--lifetime", "3240s", "--lifetime-stagger", "180s"]
    # Margins are kept between 60 s and 900 s.
    assert lifetime_args("00:10:00", None)[1] == "540s"
    assert lifetime_args("10:00:00", None)[1] == f"{36000 - 900}s"
    assert lifetime_args("00:05:00", 120) == ["--lifetime", "180s", "--lifetime-stagger", "60s"]
    with pytest.raises(ConfigError, match="leaves no time"):
        lifetime_args("00:01:00", None)


def test_dask_settings_travel_as_environment():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "77s", "distributed.comm.retry.count": 4}):
        lines = dask_env_lines()
    assert "export DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=77s" in lines
    assert "export DASK_DISTRIBUTED__COMM__RETRY__COUNT=4" in lines


def test_hostfile_and_host_precedence(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# compute nodes\nnode1 slots=4\n\nnode2  # spare\n")
    assert read_hostfile(hostfile) == ["node1", "node2"]
    ssh = SSHConfig(hosts=["a"], hostfile=str(hostfile))
    assert ssh_hosts(ssh, "x,y") == ["x", "y"]
    assert ssh_hosts(ssh, None) == ["a"]
    assert ssh_hosts(SSHConfig(hostfile=str(hostfile)), None) == ["node1", "node2"]
    with pytest.raises(ConfigError, match="needs hosts"):
        ssh_hosts(SSHConfig(), None)
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="names no host"):
        read_hostfile(tmp_path / "empty")
    assert connect_options(SSHConfig(port=2222, key_file="/k")) == {"port": 2222, "client_keys": ["/k"]}


def test_kubernetes_resource():
    k8s = KubernetesConfig(name="ical", n_workers=3, cpu="2", memory="8Gi", pvc="sdpflow-results", env={"A": "1"})
    resource = cluster_resource(k8s)
    assert resource["kind"] == "DaskCluster" and resource["metadata"]["name"] == "ical"
    worker = resource["spec"]["worker"]
    assert worker["replicas"] == 3
    container = worker["spec"]["containers"][0]
    assert container["image"] == default_image() and default_image().endswith(f":{__version__}")
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "8Gi"}
    args = container["args"]
    assert args[args.index("--nthreads") + 1] == "2" and args[args.index("--memory-limit") + 1] == "8GiB"
    for role in ("scheduler", "worker"):
        pod = resource["spec"][role]["spec"]
        assert pod["volumes"] == [{"name": "results", "persistentVolumeClaim": {"claimName": "sdpflow-results"}}]
        assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/data"
        assert pod["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                               {"name": "MALLOC_MMAP_THRESHOLD_", "value": "33554432"}]
    assert "volumes" not in cluster_resource(KubernetesConfig())["spec"]["worker"]["spec"]


def test_worker_memory_known_before_anything_starts():
    """What each worker may use, as each backend shares it out; unknown (None) for a running scheduler."""
    from distributed.system import MEMORY_LIMIT

    from sdpflow.config.cluster import BatchJobConfig, ClusterConfig
    from sdpflow.engine.cluster import check_worker_memory

    slurm = ClusterConfig(cluster_kwargs=BatchJobConfig(memory="8GiB", processes=2))
    assert get_backend("slurm").worker_memory(slurm, "2") == 4 * 2**30
    assert get_backend("kubernetes").worker_memory(ClusterConfig(kubernetes=KubernetesConfig(memory="3Gi")), None) == 3 * 2**30
    assert get_backend("local").worker_memory(ClusterConfig(memory_limit="1.5GiB"), "4") == int(1.5 * 2**30)
    cores = os.cpu_count()
    assert get_backend("local").worker_memory(ClusterConfig(), str(cores)) == int(MEMORY_LIMIT / cores)
    assert get_backend("address").worker_memory(ClusterConfig(), "tcp://127.0.0.1:8786") is None
    check_worker_memory("local:1", MEMORY_LIMIT // 2, "--size 8 8", "x")  # fits
    check_worker_memory("tcp://127.0.0.1:8786", 10**15, "--size 8 8", "x")  # not known: not refused
    with pytest.raises(ConfigError, match=r"--size 8 8: a worker needs about 1.00 GiB, more than the 512.00 MiB "
                                          r"each worker of cluster 'local:1' has: smaller"):
        check_worker_memory(ClusterConfig(spec="local:1", memory_limit="512MiB"), 2**30, "--size 8 8", "smaller")
