"""``sdpflow simulate``: write a simulated MeasurementSet and its truth (sky, gains) into an output folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sdpflow.cli.common import console
from sdpflow.cli.options import with_model_options
from sdpflow.config import load_config
from sdpflow.config.simulate import SimulateConfig
from sdpflow.errors import InputError

# The options come from the simulate schema, so they match `sdpflow config show simulate` and YAML files.


def simulate(
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--out", help="Output folder: OUT/obs.ms and the truth files beside it.")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of simulate options.")] = None,
    overrides: Annotated[list[str], typer.Option("--set", help="key=value override (repeatable).")] = [],  # noqa: B006
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a folder that holds other files "
                                            "(they are kept; none is ever replaced).")] = False,
) -> None:
    """Simulate a LOW-like observation: OUT/obs.ms of corrupted, noisy visibilities plus truth_sky.csv and true_gains.h5."""
    from sdpflow.pipelines.simulate import MS_NAME, simulate_observation

    if out.suffix.lower() == ".ms":
        # --out used to name the MS itself; now it names its folder, and OUT/obs.ms would be a surprise.
        raise InputError(f"--out {out} names the output folder (the MS is written as FOLDER/{MS_NAME}): "
                         f"pass a folder, e.g. --out {out.with_suffix('')}")
    settings = load_config(SimulateConfig, config, overrides, values, name="simulate")
    assert isinstance(settings, SimulateConfig)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]simulate[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("array and uvw", total=1.0)
        products = simulate_observation(settings, out / MS_NAME, overwrite=overwrite,
                                        progress=lambda step, fraction: bar.update(task, description=step,
                                                                                   completed=fraction))
    elapsed = time.perf_counter() - started
    console.print(f"wrote {products.ms} ({products.n_visibilities:,} visibilities x {products.n_correlations} correlations) "
                  f"in {elapsed:.1f} s")
    console.print(f"truth: {products.truth_sky}, {products.true_gains}; summary: {products.summary}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(with_model_options(SimulateConfig, simulate))
