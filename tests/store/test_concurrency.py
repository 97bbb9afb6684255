"""Many writer processes at once: nothing lost, on SQLite (WAL) and on PostgreSQL."""

import multiprocessing

from sdpflow.store import RunStore

PROCESSES = 4
UPDATES = 200


def _writer(url: str, run_id: str, index: int) -> None:
    store = RunStore(url)
    for step in range(UPDATES):
        name = f"p{index}-s{step % 50}"
        store.set_stage(run_id, name, status="running", attempt=step // 50 + 1)
        store.add_event(run_id, "update", stage=name, detail={"process": index, "step": step})
    store.dispose()


def test_concurrent_writers_lose_nothing(db_url, tmp_path):
    store = RunStore(db_url)
    run_id = store.create_run("concurrency", {}, tmp_path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(db_url, run_id, index)) for index in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    assert store.count("events", run_id) == PROCESSES * UPDATES
    stages = store.get_stages(run_id)
    assert len(stages) == PROCESSES * 50
    assert {stage["attempt"] for stage in stages.values()} == {UPDATES // 50}
    steps = sorted((e["detail"]["process"], e["detail"]["step"]) for e in store.get_events(run_id))
    assert steps == [(p, s) for p in range(PROCESSES) for s in range(UPDATES)]
