"""Secret-named configuration values: redacted in the run database, asked for again by resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdpflow.errors import InputError
from sdpflow.pipelines import resume_run, start_run
from sdpflow.store import RunStore
from sdpflow.store.secrets import is_secret_name, redact_secrets, restore_secrets
from tests.engine.toy_pipeline import ToyConfig

TOY = "tests.engine.toy_pipeline:TOY"


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("db_password", True), ("AWS_SECRET_ACCESS_KEY", True), ("apiToken", True),
    ("GITHUB_TOKEN", True), ("api_key", True), ("private_key", True), ("PASSWD", True),
    ("key", False), ("key_file", False), ("token_path", False), ("keyboard", False), ("monkey", False),
    ("n_workers", False), ("REGION", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_a_placeholder_is_salted_and_restored_only_from_the_same_value():
    config = {"cluster": {"kubernetes": {"env": {"API_TOKEN": "s3cret", "REGION": "eu"}}}, "n": [1, {"password": "pw"}]}
    first, second = redact_secrets(config), redact_secrets(config)
    token = first["cluster"]["kubernetes"]["env"]["API_TOKEN"]
    assert token.startswith("<redacted ") and "s3cret" not in str(first) and "pw" not in str(first["n"])
    assert token != second["cluster"]["kubernetes"]["env"]["API_TOKEN"]  # salted: equal secrets do not show
    assert first["cluster"]["kubernetes"]["env"]["REGION"] == "eu"
    assert restore_secrets(first, "run x", {"API_TOKEN": "s3cret", "PASSWORD": "pw"}) == config
    with pytest.raises(InputError, match=r"run x: \$API_TOKEN is not the API_TOKEN the run started with"):
        restore_secrets(first, "run x", {"API_TOKEN": "other", "PASSWORD": "pw"})


def test_the_database_never_holds_the_secret_and_resume_needs_it_again(tmp_path, monkeypatch):
    source = tmp_path / "input.txt"
    source.write_text("ab")
    db = tmp_path / "runs.db"
    store = RunStore(f"sqlite:///{db}")
    config = ToyConfig(input=str(source), env={"AWS_SECRET_ACCESS_KEY": "hunter2", "REGION": "eu"})
    first = start_run(TOY, config, tmp_path / "out", store=store, until_stage="first")
    recorded = store.get_run(first.run_id)
    assert recorded["config"]["env"]["REGION"] == "eu"
    assert recorded["config"]["env"]["AWS_SECRET_ACCESS_KEY"].startswith("<redacted ")
    assert not any(b"hunter2" in path.read_bytes() for path in tmp_path.glob("runs.db*"))
    status = recorded["status"]
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(InputError, match=r"set \$AWS_SECRET_ACCESS_KEY to it again to resume"):
        resume_run(first.run_id, store=store)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not it")
    with pytest.raises(InputError, match="is not the AWS_SECRET_ACCESS_KEY the run started with"):
        resume_run(first.run_id, store=store)
    assert store.get_run(first.run_id)["status"] == status  # refused before anything changed
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    rest = resume_run(first.run_id, store=store)
    assert rest.ran == ["second"] and rest.skipped == ["first"]
    assert Path(tmp_path / "out" / "b.txt").read_text() == "ABAB!"
