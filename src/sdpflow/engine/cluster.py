"""Open a Dask client from a cluster spec, and always close what was opened.

``with open_cluster(config.cluster) as client:`` is how a pipeline gets its workers. The
spec (``local``, ``local:N``, ``tcp://host:port``, ``slurm[:JOBS]``, ``pbs[:JOBS]``,
``ssh[:HOSTS]``, ``kubernetes``) picks a backend from :mod:`sdpflow.engine.backends`;
with no spec, ``$SDPFLOW_SCHEDULER`` names a running scheduler, else ``local``.

Whatever sdpflow starts (worker processes, batch jobs, SSH processes, pods) is shut down
when the block ends: on success, on an error, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import threading
import time
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import dask
from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.backends import WORKER_ENVIRONMENT, Backend, get_backend
from sdpflow.errors import ClusterError, ConfigError, SdpflowError

if TYPE_CHECKING:
    from distributed.deploy import Cluster

log = logging.getLogger(__name__)

#: Environment variable naming a running scheduler, used when no spec is given.
SCHEDULER_ENV = "SDPFLOW_SCHEDULER"
#: Set in every worker: its memory budget in bytes (0: unlimited) and threads.
MEMORY_ENV = "SDPFLOW_WORKER_MEMORY"
THREADS_ENV = "SDPFLOW_WORKER_THREADS"
#: Set in every worker: the memory budget of one task (worker budget / threads), in bytes.
TASK_MEMORY_ENV = "SDPFLOW_TASK_MEMORY"

#: Scheduler settings that keep finished work from being recomputed or stolen while
#: workers come and go (adaptive scaling, walltimes): root tasks wait on the scheduler
#: instead of piling onto workers that may leave, stealing is rare, a busy worker is not
#: declared dead for a slow heartbeat, and a task lost with a leaving worker does not
#: count as failing. Keys in ``cluster.dask_config`` win over these.
SAFE_SCALING: dict[str, Any] = {
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.scheduler.work-stealing-interval": "30s",
    "distributed.scheduler.worker-ttl": "15 minutes",
    "distributed.scheduler.allowed-failures": 10,
    "distributed.comm.timeouts.connect": "60s",
    "distributed.comm.timeouts.tcp": "120s",
    "distributed.comm.retry.count": 5,
}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a spec into a backend name and its argument: ``slurm:4`` → ``("slurm", "4")``.

    ``tcp://``, ``tls://`` and ``ucx://`` addresses go to the ``address`` backend.
    """
    spec = spec.strip()
    if "://" in spec:
        return "address", spec
    name, _, arg = spec.partition(":")
    return name.lower(), (arg or None)


def resolve_config(spec: str | ClusterConfig | None = None, override: str | None = None) -> ClusterConfig:
    """The cluster section to use: ``override`` (``--cluster``) wins over its ``spec``, then
    ``$SDPFLOW_SCHEDULER``, then ``local``."""
    config = spec.model_copy(deep=True) if isinstance(spec, ClusterConfig) else ClusterConfig(spec=spec)
    if override:
        config.spec = override
    if not config.spec:
        config.spec = os.environ.get(SCHEDULER_ENV) or "local"
    return config


def check_spec(spec: str | ClusterConfig | None = None, override: str | None = None) -> None:
    """Raise :class:`ClusterSpecError` (exit 2) for a spec no backend takes, before anything starts or is recorded."""
    config = resolve_config(spec, override)
    name, arg = parse_spec(config.spec or "local")
    get_backend(name).check(config, arg)


def check_reachable(spec: str | ClusterConfig | None = None, override: str | None = None) -> None:
    """Raise :class:`ClusterError` (exit 3, within 10 s) when a scheduler that should already run does not
    answer; call it before creating an output folder or recording a run."""
    config = resolve_config(spec, override)
    name, arg = parse_spec(config.spec or "local")
    get_backend(name).reach(config, arg)


def check_worker_memory(spec: str | ClusterConfig | None, needed: int, what: str, advice: str) -> None:
    """Refuse (:class:`ConfigError`, exit 2) work whose worker needs more than ``needed`` bytes when the
    cluster's workers are known to have less, before anything starts or is recorded. ``what``
    names the option and its value, ``advice`` what to change."""
    from dask.utils import format_bytes

    config = resolve_config(spec)
    name, arg = parse_spec(config.spec or "local")
    limit = get_backend(name).worker_memory(config, arg)
    if limit is not None and needed > limit:
        raise ConfigError(f"{what}: a worker needs about {format_bytes(needed)}, more than the {format_bytes(limit)} "
                          f"each worker of cluster {config.spec!r} has: {advice}")


def dask_settings(config: ClusterConfig) -> dict[str, Any]:
    """The Dask settings in force while the cluster is open (safe scaling, the workers'
    environment, then the user's)."""
    settings = dict(SAFE_SCALING) if config.safe_scaling else {}
    # a nanny sets these in the environment before it starts its worker process
    settings.update({f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in WORKER_ENVIRONMENT.items()})
    settings.update(config.dask_config)
    return settings


class WorkerBudget(WorkerPlugin):
    """Publishes a worker's memory budget and threads as environment variables (and gives its
    sdpflow log records sdpflow's format).

    Executables started by a task inherit them (``SDPFLOW_WORKER_MEMORY``, bytes;
    ``SDPFLOW_TASK_MEMORY``, bytes; ``SDPFLOW_WORKER_THREADS``) and can size themselves;
    the worker's nanny enforces the budget itself.
    """

    name = "sdpflow-worker-budget"

    def setup(self, worker: Any) -> None:
        from sdpflow.loglines import format_worker_logs

        format_worker_logs()  # its sdpflow records as "warning: ..." lines on the worker's stderr
        limit = int(worker.memory_manager.memory_limit or 0)
        nthreads = int(worker.state.nthreads)
        os.environ[MEMORY_ENV] = str(limit)
        os.environ[THREADS_ENV] = str(nthreads)
        os.environ[TASK_MEMORY_ENV] = str(limit // max(nthreads, 1))


class ImportModules(WorkerPlugin):
    """Imports a pipeline's task modules on each worker as it joins, before its first task.

    A worker's first task otherwise pays for them (numba, astropy, ducc0: about a second)
    in the middle of the run; at start-up they overlap the client's own preparation.
    """

    name = "sdpflow-worker-imports"

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = tuple(modules)

    def setup(self, worker: Any) -> None:
        for module in self.modules:
            try:
                importlib.import_module(module)
            except Exception as error:  # noqa: BLE001 - the task that needs it will fail with the cause
                log.warning("worker %s cannot import %s: %s", worker.address, module, error)


@dataclass(frozen=True)
class WorkerProbe:
    """What a probe task saw on one worker. ``memory_limit`` in bytes (0: unlimited)."""

    address: str
    host: str
    pid: int
    nthreads: int
    memory_limit: int
    memory_env: int


def _probe() -> tuple[str, int, int]:
    return socket.gethostname(), os.getpid(), int(os.environ.get(MEMORY_ENV, "-1"))


def probe_workers(client: Client, timeout: float = 60.0) -> list[WorkerProbe]:
    """Run one task on every worker (pinned to it) and report what each saw, sorted by address."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    futures = {
        address: client.submit(_probe, key=f"sdpflow-probe-{i}", workers=[address], allow_other_workers=False, pure=False)
        for i, address in enumerate(sorted(info))
    }
    probes = []
    for address, future in futures.items():
        try:
            host, pid, memory_env = future.result(timeout=timeout)
        except Exception as error:
            raise ClusterError(f"probe task on worker {address} failed: {type(error).__name__}: {error}") from None
        worker = info[address]
        probes.append(
            WorkerProbe(address, host, pid, int(worker["nthreads"]), int(worker.get("memory_limit") or 0), memory_env)
        )
    return probes


def wait_for_workers(client: Client, n: int, timeout: float, backend: Backend, cluster: Cluster | None) -> None:
    """Block until ``n`` workers have joined, or raise :class:`ClusterError` after ``timeout`` seconds
    saying why (e.g. batch jobs pending and for what reason)."""
    deadline = time.monotonic() + timeout
    while True:
        have = len(client.nthreads())  # one small reply, not every worker's full info
        if have >= n:
            return
        if time.monotonic() > deadline:
            why = backend.pending(cluster) if cluster is not None else ""
            raise ClusterError(
                f"{have} of {n} {backend.name} workers joined within {timeout:.0f} s"
                + (f": {why}" if why else "")
                + "; check the queue and the job size, or raise cluster.start_timeout"
            )
        time.sleep(0.5)


def dashboard_link(client: Client, config: ClusterConfig) -> str:
    """The dashboard URL; a dashboard sdpflow bound to the loopback interface gets a loopback link."""
    link = client.dashboard_link
    host = config.dashboard_address.rpartition(":")[0]
    if host in ("127.0.0.1", "localhost"):
        port = client.scheduler_info().get("services", {}).get("dashboard")
        if port:
            link = f"http://{host}:{port}/status"
    return link


def _connect(target: Cluster | str, config: ClusterConfig) -> Client:
    from sdpflow.engine.security import configured_security

    # A cluster object hands its own credentials to the client; an address uses cluster.tls.
    security = configured_security(config) if isinstance(target, str) else None
    try:
        return Client(target, timeout=config.connect_timeout, set_as_default=True, security=security)
    except (OSError, TimeoutError) as error:
        where = target if isinstance(target, str) else getattr(target, "scheduler_address", "?")
        raise ClusterError(
            f"cannot reach the Dask scheduler at {where} within {config.connect_timeout:g} s "
            f"({type(error).__name__}); start it (`dask scheduler`) or fix --cluster / ${SCHEDULER_ENV}"
        ) from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (a batch system or `kill` stopping the pipeline) unwind like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Seconds a started cluster gets to close in order before its local processes are killed, and
#: seconds the client gets to say goodbye before that: a Ctrl-C ends a run within ~10 s.
CLOSE_TIMEOUT_S = 6.0
CLIENT_CLOSE_TIMEOUT_S = 3.0


def _close_client(client: Client) -> None:
    """Close the client without waiting long for a scheduler that may be gone or busy."""
    try:
        client.close(timeout=CLIENT_CLOSE_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - a client that cannot say goodbye is closed anyway
        log.warning("the Dask client did not close cleanly: %s", type(error).__name__)


def _close_cluster(cluster: Cluster) -> None:
    """Close a started cluster within :data:`CLOSE_TIMEOUT_S`; a second Ctrl-C does not stop the cleanup.

    An orderly close waits on every worker (each nanny gives its worker 4 s, then kills it);
    on a loaded machine that chain took more than 30 s after a Ctrl-C. Whatever local worker
    process is still alive after the timeout (or a second interrupt) is killed with its children.
    """
    import psutil

    local = _local_processes(cluster)
    try:
        cluster.close(timeout=CLOSE_TIMEOUT_S)
    except KeyboardInterrupt:
        log.warning("interrupted again while the cluster closes: killing its local processes")
    except Exception as error:  # noqa: BLE001 - the processes are killed below either way
        log.warning("the cluster did not close in order within %.0f s (%s): killing its local processes",
                    CLOSE_TIMEOUT_S, type(error).__name__)
    finally:
        alive = [process for process in local if process.is_running()]
        for process in alive:
            for child in _children(process) + [process]:
                with suppress(psutil.Error):
                    child.kill()
        psutil.wait_procs(alive, timeout=5)


def _local_processes(cluster: Cluster) -> list:
    """The worker processes a LocalCluster's nannies started on this machine (nothing else of ours)."""
    import psutil
    from distributed import LocalCluster

    if not isinstance(cluster, LocalCluster):
        return []
    processes = []
    for nanny in list(cluster.workers.values()):
        pid = getattr(getattr(nanny, "process", None), "pid", None)
        if pid:
            with suppress(psutil.Error):
                processes.append(psutil.Process(pid))
    return processes


def _children(process) -> list:
    import psutil

    with suppress(psutil.Error):
        return process.children(recursive=True)
    return []


@dataclass
class ClusterSession:
    """An open cluster: its client, and (when sdpflow started it) the cluster object."""

    client: Client
    backend: Backend
    config: ClusterConfig
    arg: str | None
    cluster: Cluster | None = None

    @property
    def started(self) -> bool:
        """Whether sdpflow started this cluster (and will shut it down)."""
        return self.cluster is not None

    def scale(self, jobs: int) -> int:
        """Ask for ``jobs`` batch jobs (or workers); returns the number of workers to expect."""
        if self.cluster is None:
            raise ClusterError(f"{self.config.spec}: sdpflow did not start this cluster and cannot scale it")
        return self.backend.scale(self.cluster, jobs, self.config)

    def wait(self, n: int, timeout: float | None = None) -> None:
        """Wait for ``n`` workers, at most ``timeout`` seconds (default ``cluster.start_timeout``)."""
        wait_for_workers(self.client, n, self.config.start_timeout if timeout is None else timeout,
                         self.backend, self.cluster)


@contextmanager
def cluster_session(
    spec: str | ClusterConfig | None = None,
    *,
    override: str | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    wait: bool = True,
    worker_imports: tuple[str, ...] = (),
) -> Iterator[ClusterSession]:
    """Like :func:`open_cluster`, yielding the whole :class:`ClusterSession` (for ``cluster check``)."""
    config = resolve_config(spec, override)
    name, arg = parse_spec(config.spec or "local")
    backend = get_backend(name)
    with ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        stack.enter_context(dask.config.set(dask_settings(config)))
        cluster: Cluster | None = None
        try:
            target = backend.start(config, arg)
        except (SdpflowError, KeyboardInterrupt):
            raise
        except Exception as error:
            raise ClusterError(f"cannot start the {name} cluster: {type(error).__name__}: {error}") from None
        if not isinstance(target, str):
            cluster = target
            stack.callback(_close_cluster, cluster)
        client = _connect(target, config)
        stack.callback(_close_client, client)
        try:
            client.register_plugin(WorkerBudget())
            if worker_imports:
                client.register_plugin(ImportModules(worker_imports))
        except Exception as error:  # a foreign scheduler's workers may lack sdpflow
            log.warning("workers cannot load sdpflow's plugins (%s); %s is not set there", error, MEMORY_ENV)
        link = dashboard_link(client, config)
        log.info("Dask dashboard of the %s cluster: %s", name, link)
        if on_dashboard is not None:
            on_dashboard(link)
        session = ClusterSession(client, backend, config, arg, cluster)
        if wait:
            session.wait(backend.expected_workers(cluster, config, arg))
        yield session


@contextmanager
def open_cluster(
    spec: str | ClusterConfig | None = None,
    *,
    override: str | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    wait: bool = True,
    worker_imports: tuple[str, ...] = (),
) -> Iterator[Client]:
    """A Dask client on the cluster named by ``spec``; everything started is closed on exit.

    ``spec`` is a spec string or a ``cluster:`` section; ``override`` (the CLI's
    ``--cluster``) replaces its spec. The dashboard link goes to ``on_dashboard`` and the
    log. With ``wait``, the block starts once the workers a backend promises (fixed jobs,
    SSH hosts, pods) have joined, or fails with :class:`ClusterError` after
    ``cluster.start_timeout`` seconds. An unreachable scheduler fails after
    ``cluster.connect_timeout`` seconds. Each worker imports ``worker_imports`` (module
    names) as it joins.
    """
    with cluster_session(spec, override=override, on_dashboard=on_dashboard, wait=wait,
                         worker_imports=worker_imports) as session:
        yield session.client
