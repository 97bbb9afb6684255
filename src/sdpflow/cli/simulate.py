"""``sdpflow simulate``: write a simulated MeasurementSet and its truth (sky, gains) beside it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sdpflow.cli.common import console
from sdpflow.config import load_config
from sdpflow.config.simulate import SimulateConfig

# The simulate schema joins the others, so `sdpflow config show simulate` and YAML files work.


def simulate(
    out: Annotated[Path, typer.Option("--out", help="MeasurementSet to write; the truth files go beside it.")],
    preset: Annotated[Optional[str], typer.Option("--preset", help="demo, small or medium.")] = None,
    stations: Annotated[Optional[int], typer.Option("--stations", help="Number of stations.")] = None,
    times: Annotated[Optional[int], typer.Option("--times", help="Number of integrations.")] = None,
    channels: Annotated[Optional[int], typer.Option("--channels", help="Number of channels.")] = None,
    freq_start: Annotated[Optional[float], typer.Option("--freq-start", help="First channel frequency (Hz).")] = None,
    freq_width: Annotated[Optional[float], typer.Option("--freq-width", help="Channel width (Hz).")] = None,
    phase_error: Annotated[Optional[float], typer.Option("--phase-error", help="RMS antenna phase error (rad).")] = None,
    noise: Annotated[Optional[float], typer.Option("--noise", help="Noise per correlation (Jy).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.")] = None,
    layout: Annotated[Optional[str], typer.Option("--layout", help="Stations from a CSV or an MS.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of simulate options.")] = None,
    overrides: Annotated[list[str], typer.Option("--set", help="key=value override (repeatable).")] = [],  # noqa: B006
) -> None:
    """Simulate a LOW-like observation: corrupted, noisy visibilities plus truth_sky.csv and true_gains.h5."""
    from sdpflow.pipelines.simulate import simulate_observation

    given = {"preset": preset, "stations": stations, "times": times, "channels": channels,
             "freq_start_hz": freq_start, "freq_width_hz": freq_width, "phase_error_rad": phase_error,
             "noise_jy": noise, "seed": seed, "layout": layout}
    values = {key: value for key, value in given.items() if value is not None}
    settings = load_config("simulate", config, overrides, values)
    assert isinstance(settings, SimulateConfig)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]simulate[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("array and uvw", total=1.0)
        products = simulate_observation(settings, out,
                                        progress=lambda step, fraction: bar.update(task, description=step,
                                                                                   completed=fraction))
    elapsed = time.perf_counter() - started
    console.print(f"wrote {products.ms} ({products.n_visibilities:,} visibilities x 2 correlations) "
                  f"in {elapsed:.1f} s")
    console.print(f"truth: {products.truth_sky}, {products.true_gains}; summary: {products.summary}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
