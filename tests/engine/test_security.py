"""Only the run's own client can connect to the clusters sdpflow starts; cluster.tls for the others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, Security

from sdpflow.engine.cluster import open_cluster
from sdpflow.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_a_local_cluster_accepts_only_its_own_client():
    with open_cluster("local:1") as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result() == 3
        with pytest.raises(Exception):  # noqa: B017 - plain TCP cannot speak to a TLS listener
            Client(address.replace("tls://", "tcp://"), timeout=3)
        with pytest.raises(Exception):  # noqa: B017 - credentials of another CA are refused
            Client(address, security=Security.temporary(), timeout=3)


def _write_pems(security: Security, folder: Path) -> dict[str, str]:
    paths = {}
    for name, pem in (("ca_file", security.tls_ca_file), ("cert", security.tls_client_cert),
                      ("key", security.tls_client_key)):
        path = folder / f"{name}.pem"
        path.write_text(pem)
        path.chmod(0o600)
        paths[name] = str(path)
    return paths


def test_a_tls_scheduler_is_reached_with_cluster_tls(tmp_path):
    security = Security.temporary()
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", security=security,
                      dashboard_address=None) as cluster:
        pems = _write_pems(security, tmp_path)
        base = [sys.executable, "-m", "sdpflow.cli", "--db", f"sqlite:///{tmp_path / 'runs.db'}",
                "--cluster", cluster.scheduler_address, "run", "demo-flow"]
        settings = [f"--set=cluster.tls.{name}={path}" for name, path in pems.items()]
        good = subprocess.run([*base, "--out", str(tmp_path / "a"), *settings, "--set", "cluster.connect_timeout=10"],
                              capture_output=True, text=True, cwd=REPO, timeout=120, env=os.environ)
        assert good.returncode == 0, good.stderr
        assert "sum of k^2" in good.stdout
        bare = subprocess.run([*base, "--out", str(tmp_path / "b"), "--set", "cluster.connect_timeout=3"],
                              capture_output=True, text=True, cwd=REPO, timeout=120, env=os.environ)
        assert bare.returncode == 2 and "speaks TLS: give cluster.tls.ca_file" in bare.stderr


def test_incomplete_tls_settings_are_one_line():
    from sdpflow.config.cluster import ClusterConfig
    from sdpflow.engine.security import configured_security

    with pytest.raises(ConfigError, match="give ca_file, cert and key together"):
        configured_security(ClusterConfig.model_validate({"tls": {"ca_file": "/nope"}}))
