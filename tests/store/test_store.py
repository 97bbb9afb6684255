import pytest

from sdpflow.errors import RunNotFound, StoreError
from sdpflow.store import RunStore, redact_url
from sdpflow.store.schema import SCHEMA_VERSION


def test_run_lifecycle(db_url, tmp_path):
    store = RunStore(db_url)
    assert store.schema_version() == SCHEMA_VERSION
    run_id = store.create_run("demo-flow", {"squares": {"count": 3}}, tmp_path, cluster="local")
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["config"] == {"squares": {"count": 3}}
    assert run["config_hash"].startswith("sha256:")
    store.set_stage(run_id, "a", status="running", attempt=1)
    store.set_stage(run_id, "a", status="completed", outputs={"x.txt": "sha256:00"})
    store.set_stage(run_id, "b", status="failed", attempt=2, error="boom")
    stages = store.get_stages(run_id)
    assert list(stages) == ["a", "b"]
    assert stages["a"]["attempt"] == 1 and stages["a"]["outputs"] == {"x.txt": "sha256:00"}
    assert stages["b"]["status"] == "failed" and stages["b"]["error"] == "boom"
    store.record_product(run_id, "a", "x.txt", "sha256:00", 12, {"versions": {"sdpflow": "t"}})
    store.record_product(run_id, "a", "x.txt", "sha256:01", 13, {"versions": {"sdpflow": "t"}})
    products = store.get_products(run_id)
    assert len(products) == 1 and products[0]["checksum"] == "sha256:01"
    store.add_events(run_id, [{"event": "e1"}, {"event": "e2", "stage": "a", "detail": {"k": 1}}])
    assert [e["event"] for e in store.get_events(run_id)] == ["e1", "e2"]
    store.add_tasks(run_id, [{"pool": "p", "name": "t1", "kind": "function", "status": "finished", "attempts": 1}])
    assert store.count("tasks", run_id) == 1
    store.mark_run(run_id, "failed", error="stage b failed")
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["finished"] is not None and run["error"] == "stage b failed"
    assert store.get_run(run_id[:-1])["id"] == run_id  # a unique prefix is enough
    assert run_id in [r["id"] for r in store.list_runs(limit=500)]


def test_unknown_run(db_url):
    with pytest.raises(RunNotFound, match="no run 'nope-'"):
        RunStore(db_url).get_run("nope-")


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(url)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE schema_info SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore(url)


def test_passwords_are_redacted():
    assert redact_url("postgresql://alice:s3cret@db.example:5432/runs") == "postgresql://alice:***@db.example:5432/runs"
    with pytest.raises(StoreError) as caught:
        RunStore("postgresql://alice:s3cret@127.0.0.1:1/runs")
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


def test_plain_path_means_sqlite(tmp_path):
    store = RunStore(str(tmp_path / "sub" / "runs.db"))
    assert store.url.startswith("sqlite:///") and (tmp_path / "sub" / "runs.db").exists()


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    RunStore(f"sqlite:///{tmp_path / 'runs.db'}").create_run("p", {}, tmp_path)
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        if (tmp_path / name).exists():
            assert (tmp_path / name).stat().st_mode & 0o077 == 0, name


def test_database_password_from_a_file_and_a_warning_for_one_on_the_command_line(tmp_path):
    import subprocess
    import sys

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    from sdpflow.store.urls import read_password_file, url_has_password, with_password

    url = with_password("postgresql://sdpflow@127.0.0.1/db", read_password_file(secret))
    assert url_has_password(url) and "s3cret" in url and not url_has_password("postgresql://u@h/db")
    shown = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", f"sqlite:///{tmp_path / 'r.db'}", "runs",
                            "list"], capture_output=True, text=True)
    assert "warning" not in shown.stderr
    shown = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", "postgresql://u:pw@127.0.0.1:9/x", "runs",
                            "list"], capture_output=True, text=True)
    assert "the password in --db is visible to other users" in shown.stderr and "pw@" not in shown.stderr
