"""A task pool described in YAML (``sdpflow pool run tasks.yaml``).

Example::

    name: convert
    container: apptainer exec tools.sif    # optional, put before every command
    nodes: 2                               # local workers (ignored for a remote cluster)
    threads_per_worker: 4
    defaults: {timeout: 600}               # applied to every command task
    tasks:
      - name: fetch
        command: ["wget", "-q", "https://example.org/a.fits"]
      - name: convert-{i}                  # {i} is replaced, one task per i
        repeat: 10
        command: "convert in-{i}.fits out-{i}.png"
        cwd: work
        timeout: 60
        stdout: convert-{i}.log
      - name: stats
        function: mypackage.stats:summarise   # module:function, importable on the workers
        args: [out]
        kwargs: {verbose: true}

A task has exactly one of ``command`` (a string split like a shell would, or a list) and
``function``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from sdpflow.config.cluster import ClusterConfig
from sdpflow.config.base import Section


class TaskDefaults(Section):
    """Options applied to every command task that does not set them."""

    cwd: str | None = Field(default=None, description="working directory of commands")
    env: dict[str, str] | None = Field(default=None, description="variables added to the environment of commands")
    timeout: float | None = Field(default=None, gt=0, description="seconds before a command's process group is killed")


class PoolTask(Section):
    """One task (or ``repeat`` tasks, with ``{i}`` replaced by 0..repeat-1)."""

    name: str = Field(min_length=1, description="unique task name; may hold {i} with repeat")
    command: str | list[str] | None = Field(default=None, description="executable and its arguments")
    function: str | None = Field(default=None, description="module:function to call")
    args: list[Any] = Field(default_factory=list, description="arguments of the function")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the function")
    cwd: str | None = None
    env: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0, description="seconds; a function with a timeout runs in a child process")
    stdout: str | None = Field(default=None, description="file for standard output (relative to cwd)")
    stderr: str | None = Field(default=None, description="file for standard error (relative to cwd)")
    nproc: int = Field(default=1, ge=1)
    repeat: int | None = Field(default=None, ge=1, description="make this many tasks, {i} = 0..repeat-1")

    @field_validator("function")
    @classmethod
    def _module_function(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError("give module:function, e.g. mypackage.tasks:convert")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> "PoolTask":
        if (self.command is None) == (self.function is None):
            raise ValueError("give exactly one of command and function")
        if self.function is not None and any(
            value is not None for value in (self.cwd, self.env, self.stdout, self.stderr)
        ):
            raise ValueError("cwd, env, stdout and stderr apply to commands only")
        words = self.command.split() if isinstance(self.command, str) else self.command
        if words is not None and (not words or not str(words[0]).strip()):
            raise ValueError("command is empty: give the executable and its arguments")
        return self


class PoolConfig(Section):
    """A task pool: its tasks and where they run."""

    name: str = Field(default="pool", min_length=1, pattern=r"^[^/\\\x00]+$",
                      description="pool name, in the event log and run database (no '/': it names pool-NAME)")
    container: str | list[str] | None = Field(default=None, description="prefix of every command, e.g. 'apptainer exec img.sif'")
    nodes: int | None = Field(default=None, ge=1, description="local cluster: worker processes")
    threads_per_worker: int | None = Field(default=None, ge=1, description="local cluster: threads per worker")
    chunk_size: int | None = Field(default=None, ge=1, description="tasks per Dask task (default: adaptive)")
    cluster: ClusterConfig | None = Field(
        default=None, description="where the pool runs (as a pipeline's cluster: section: spec, tls, cluster_kwargs...); "
        "--cluster replaces its spec")
    defaults: TaskDefaults = Field(default_factory=TaskDefaults)
    tasks: list[PoolTask] = Field(min_length=1, description="the tasks")

    @model_validator(mode="after")
    def _unique_names(self) -> "PoolConfig":
        seen: dict[str, int] = {}
        for position, task in enumerate(self.tasks):
            names = [task.name.replace("{i}", str(i)) for i in range(task.repeat)] if task.repeat else [task.name]
            if len(set(names)) < len(names):
                raise ValueError(f"tasks.{position}: name {task.name!r} repeats {task.repeat} times: put {{i}} in it")
            for name in names:
                if name in seen:
                    raise ValueError(f"tasks.{position}: task name {name!r} is used by tasks.{seen[name]} too: "
                                     "give each task its own name")
                seen[name] = position
        return self


def load_pool_config(path: str | Path) -> PoolConfig:
    """Read and validate a pool file; problems are one-line :class:`ConfigError`."""
    from sdpflow.config import load_config

    return load_config(PoolConfig, path)
