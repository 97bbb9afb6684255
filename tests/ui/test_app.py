"""The ``sdpflow ui`` application through Starlette's TestClient: the token, filters, pages, JSON and files."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from sdpflow.store import RunStore  # noqa: E402
from sdpflow.ui.app import TOKEN_COOKIE, create_app  # noqa: E402

TOKEN = "the-token-printed-at-start"
COOKIE = TOKEN_COOKIE.format(port=80)  # the test client's requests come to port 80
SECRET = "pg-password-never-shown"


def recorded_runs(tmp_path) -> tuple[RunStore, str, str]:
    """A completed run of 40 items (with a report and a product) and a failed run of another pipeline."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    out = tmp_path / "run-a"
    out.mkdir()
    (out / "report.html").write_text("<html><body><h1 id='report'>the report</h1></body></html>")
    (out / "sum.json").write_text('{"total": 40}')
    (out / ".sdpflow").write_text("{}")
    (tmp_path / "outside.txt").write_text("not the run's")
    os.symlink(tmp_path / "outside.txt", out / "link-out.txt")
    done = store.create_run("squares", {"count": 40, "db": {"password": SECRET}}, out, cluster="local:2")
    store.add_event(done, "flow-started", detail={"stages": ["squares", "sum"], "total": 2})
    store.set_stage(done, "squares", status="running")
    store.add_event(done, "items-planned", stage="squares", detail={"items": 40, "to_run": 40, "completed_before": 0})
    store.record_items(done, "squares", [
        {"key": f"n{n:03d}", "status": "completed" if n != 7 else "failed", "fingerprint": "f", "attempts": 1,
         "elapsed": 0.01, "finished": None, "worker": "w", "outputs": None, "error": None} for n in range(40)])
    store.set_stage(done, "squares", status="completed")
    store.set_stage(done, "sum", status="completed", outputs={"sum.json": {"sha256": "sha256:ab", "size": 13}})
    store.record_product(done, "sum", "sum.json", "sha256:abcd", 13, {})
    store.mark_run(done, "completed")
    failed = store.create_run("tiles", {"zoom": 3}, tmp_path / "run-b")
    store.mark_run(failed, "failed", error="InputError: input roads.gpkg does not exist")
    return store, done, failed


@pytest.fixture
def client(tmp_path):
    store, done, failed = recorded_runs(tmp_path)
    with TestClient(create_app(store, TOKEN), base_url="http://127.0.0.1") as client:
        yield client, done, failed


def test_every_request_needs_the_token(client):
    client, done, _ = client
    for path in ("/", f"/runs/{done}", "/api/runs", f"/api/runs/{done}/progress", f"/runs/{done}/files/report.html"):
        assert client.get(path).status_code == 403
        assert client.get(path, params={"token": "wrong"}).status_code == 403
    client.cookies.set(TOKEN_COOKIE.format(port=8781), TOKEN)  # another sdpflow ui's cookie is not this one's
    assert client.get("/").status_code == 403
    client.cookies.clear()
    first = client.get("/", params={"token": TOKEN})
    assert first.status_code == 200 and first.cookies.get(COOKIE) == TOKEN
    assert client.get(f"/runs/{done}").status_code == 200  # the cookie carries it from now on
    assert client.post("/", params={"token": TOKEN}).status_code == 405  # read-only: no write routes


def test_runs_page_filters(client):
    client, done, failed = client
    client.cookies.set(COOKIE, TOKEN)

    def listed(**filters) -> set[str]:
        page = client.get("/", params=filters).text
        return {run for run in (done, failed) if f'data-run="{run}"' in page}

    assert listed() == {done, failed}
    assert listed(pipeline="squares") == {done}
    assert listed(status="failed") == {failed}
    assert listed(q="ROADS.gpkg") == {failed}  # the text filter reads errors too, case-blind
    assert listed(q="run-a") == {done}  # and folders
    assert listed(pipeline="squares", status="failed") == set()
    assert 'id="no-runs"' in client.get("/", params={"status": "running"}).text


def test_run_page_json_and_files(client):
    client, done, _ = client
    client.cookies.set(COOKIE, TOKEN)
    page = client.get(f"/runs/{done}").text
    assert 'data-stage="squares"' in page and 'data-stage="sum"' in page
    assert "39 completed, 1 failed of 40" in page
    assert '<span id="items-done">40</span> of <span id="items-total">40</span>' in page
    assert '<span id="stages-done">2</span> of <span id="stages-total">2</span>' in page
    assert "password: &lt;redacted&gt;" in page and SECRET not in page
    assert f"/runs/{done}/files/report.html" in page and f"/runs/{done}/files/sum.json" in page
    assert page.count('class="event"') == 2

    progress = client.get(f"/api/runs/{done}/progress").json()
    assert (progress["items_done"], progress["items_total"], progress["stages_done"]) == (40, 40, 2)
    assert progress["stages"][0]["items"] == {"completed": 39, "failed": 1}
    runs = client.get("/api/runs").json()
    assert [run["id"] for run in runs][::-1] == sorted(run["id"] for run in runs) and SECRET not in str(runs)

    assert "the report" in client.get(f"/runs/{done}/files/report.html").text
    assert client.get(f"/runs/{done}/files/sum.json").json() == {"total": 40}
    assert client.get(f"/runs/{done}/files/nothing.txt").status_code == 404
    assert client.get("/runs/no-such-run").status_code == 404
    for refused in ("../outside.txt", "%2E%2E/outside.txt", "link-out.txt", ".sdpflow", "..%2F..%2Fetc%2Fpasswd"):
        answer = client.get(f"/runs/{done}/files/{refused}")
        assert answer.status_code in (403, 404) and "not the run's" not in answer.text, refused
    assert client.get(f"/runs/{done}/files/link-out.txt").status_code == 403


def test_ui_refuses_a_missing_database_and_a_taken_port(tmp_path):
    import socket

    from sdpflow.errors import InputError
    from sdpflow.ui.server import bind, serve

    with pytest.raises(InputError, match=r"no run database at .*nope.db: give --db"):
        serve(f"sqlite:///{tmp_path / 'nope.db'}", 0, announce=print)
    assert not (tmp_path / "nope.db").exists()  # a reader creates no database
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(InputError, match=r"--port \d+: cannot listen on 127.0.0.1:\d+ .*choose another port"):
            bind(taken.getsockname()[1])
