"""Worker plugins on real workers: stage-out at teardown, archives that survive a crash."""

from __future__ import annotations

import os
import signal
import sys
import tarfile
import time

import cloudpickle
from distributed import Client, LocalCluster

from sdpflow import TaskPool
from sdpflow.engine.plugins import ContinuousArchive, StageOut

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def write_file(folder, name, text):
    with open(os.path.join(folder, name), "w") as stream:
        stream.write(text)
    return name


def test_stage_out_copies_each_workers_files_at_teardown(tmp_path):
    local, shared = tmp_path / "node-local", tmp_path / "shared"
    pool = TaskPool("stage")
    for i in range(5):
        pool.add_task(f"write{i}", "sh", "-c", f"echo {i} > {local}/f{i}.txt")
    pool.add_task("nested", "sh", "-c", f"mkdir -p {local}/sub && echo n > {local}/sub/n.txt")
    pool.submit("local:2", threads_per_worker=1, worker_plugin=StageOut(local, shared, per_worker=True))
    assert pool.finished() == {**{f"write{i}": 0 for i in range(5)}, "nested": 0}
    # Both workers share this host's folder, so each copy holds every file.
    assert sorted(os.listdir(shared)) == ["0", "1"]
    for worker in ("0", "1"):
        names = sorted(str(p.relative_to(shared / worker)) for p in (shared / worker).rglob("*") if p.is_file())
        assert names == [f"f{i}.txt" for i in range(5)] + ["sub/n.txt"]
    assert (shared / "0" / "f3.txt").read_text() == "3\n"


def test_continuous_archive_is_readable_after_a_worker_crash(tmp_path):
    local, archives = tmp_path / "node-local", tmp_path / "archives"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client:
            client.register_plugin(ContinuousArchive(local, archives, interval=0.2))
            for i in range(3):
                client.submit(write_file, str(local), f"part{i}.dat", "x" * 100_000, pure=False).result()
            time.sleep(1.0)  # several archive cycles
            (pid,) = client.run(os.getpid).values()
            os.kill(pid, signal.SIGKILL)  # no teardown: only the periodic archives exist
            deadline = time.monotonic() + 30
            while not client.scheduler_info()["workers"] and time.monotonic() < deadline:
                time.sleep(0.1)
            archive = archives / "0.tar.gz"
            with tarfile.open(archive) as opened:
                members = {m.name: m.size for m in opened.getmembers() if m.isfile()}
            assert members == {f"./part{i}.dat": 100_000 for i in range(3)}
            assert [p.name for p in archives.iterdir() if p.name.endswith(".tar.gz")] == ["0.tar.gz"]


def test_continuous_archive_writes_a_final_archive_at_teardown(tmp_path):
    local, archives = tmp_path / "node-local", tmp_path / "archives"
    pool = TaskPool("archive")
    pool.add_task("late", "sh", "-c", f"sleep 0.3; echo done > {local}/late.txt")
    plugin = ContinuousArchive(local, archives, interval=3600, compression="")
    assert pool.run("local:1", threads_per_worker=1, worker_plugin=plugin) == {"late": 0}
    with tarfile.open(archives / "0.tar") as opened:  # only the teardown archive can hold it
        assert opened.extractfile("./late.txt").read() == b"done\n"
    assert not [p for p in archives.iterdir() if ".part-" in p.name]
