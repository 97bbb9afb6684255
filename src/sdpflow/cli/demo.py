"""``sdpflow demo``: the one command to try sdpflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sdpflow.cli.common import console, settings
from sdpflow.cli.progress import FlowProgress
from sdpflow.cli.run import OverwriteOption


demo_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                       context_settings={"help_option_names": ["-h", "--help"]})


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the observation and the run.")] = Path("sdpflow-demo"),
    preset: Annotated[str, typer.Option("--preset", help="Simulation preset: demo, small or medium.")] = "demo",
    overwrite: OverwriteOption = False,
) -> None:
    """Simulate a LOW-like observation with 1 rad antenna phase errors, run ICAL on it, compare with the truth.

    `sdpflow demo tiles` runs the web-tiles demo instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sdpflow.config.simulate import SIMULATE_PRESETS
    from sdpflow.errors import InputError
    from sdpflow.pipelines.demo import run_demo_ical, simulate_demo
    from sdpflow.store import RunStore

    if preset not in SIMULATE_PRESETS:
        raise InputError(f"--preset {preset!r}: give one of {', '.join(SIMULATE_PRESETS)}")

    global_settings = settings(ctx)
    store = RunStore(global_settings.db_url)
    console.print(f"run database: {store.redacted_url}")
    with console.status("simulating the observation...") as status:
        products, simulation = simulate_demo(
            out, preset=preset, overwrite=overwrite,
            on_step=lambda text, fraction: status.update(f"simulating: {text} ({fraction:.0%})"))
    console.print(f"simulated {products.n_visibilities:,} visibilities with {simulation.phase_error_rad} rad RMS "
                  f"antenna phase errors: {products.ms}")
    with FlowProgress(console, "ICAL stages") as progress:
        run_id, run_dir, result = run_demo_ical(products, simulation, out, store=store,
                                                cluster_spec=global_settings.cluster_spec, observers=[progress],
                                                overwrite=overwrite)
    table = Table(title=f"sdpflow demo: ICAL run {run_id}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if result.phase_error_before_deg is not None:
        table.add_row("gain phase error RMS before calibration", f"{result.phase_error_before_deg:.1f}°")
        table.add_row("gain phase error RMS after ICAL", f"{result.phase_error_after_deg:.2f}°")
    table.add_row("truth sources above 10σ", str(result.sources_above_10_sigma))
    table.add_row("median flux ratio (restored / truth)", f"{result.median_flux_ratio:.3f}")
    table.add_row("worst flux error, sources above 100σ", f"{100 * result.worst_flux_error_above_100_sigma:.1f}%")
    table.add_row("worst flux error, sources above 10σ", f"{100 * result.worst_flux_error:.1f}%")
    table.add_row("  worst excess over 5%, in noise σ", f"{max(result.worst_flux_excess_sigma, 0):.1f}σ")
    table.add_row("worst position offset", f"{result.worst_offset_pixels:.2f} pixels")
    table.add_row("noise (MAD)", f"{1e3 * result.noise_jy_per_beam:.2f} mJy/beam")
    table.add_row("dynamic range", f"{result.dynamic_range:.0f}")
    console.print(table)
    console.print(f"observation: {Path(out).resolve() / 'obs.ms'} (truth: truth_sky.csv, true_gains.h5)")
    console.print(f"images, gains, summary: {run_dir.resolve()}")
    console.print(f"report: {run_dir.resolve() / 'report.html'}")


def demo_tiles(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the inputs and the run.")] = Path("sdpflow-tiles-demo"),
    overwrite: OverwriteOption = False,
) -> None:
    """Synthetic ice-wedge polygons in overlapping files → GeoTIFF and PNG tile pyramids, TileJSON/WMTS, a viewer."""
    from sdpflow.pipelines.tiles import tiles_summary
    from sdpflow.pipelines.tiles.demo import run_demo_tiles
    from sdpflow.store import RunStore

    global_settings = settings(ctx)
    store = RunStore(global_settings.db_url)
    console.print(f"run database: {store.redacted_url}")
    with FlowProgress(console, "tiles stages") as progress:
        made = run_demo_tiles(out, store=store, cluster_spec=global_settings.cluster_spec, observers=[progress],
                              overwrite=overwrite)
    console.print(f"inputs: {len(made.inputs)} overlapping files holding {made.polygons:,} distinct polygons: "
                  f"{made.inputs[0].parent.resolve()}")
    console.print(f"tiles run {made.run_id}: {made.run_dir.resolve()}")
    console.print(tiles_summary(made.run_dir))


def demo_polarimetry(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the observation and the runs.")] = Path("sdpflow-pol-demo"),
    overwrite: OverwriteOption = False,
) -> None:
    """A polarised field (--preset pol) imaged as I, Q, U cubes, through the polarimetry pipeline; RMs against the truth."""
    from sdpflow.pipelines.polarimetry import polarimetry_summary
    from sdpflow.pipelines.polarimetry.demo import recovery_rows, run_demo_polarimetry
    from sdpflow.store import RunStore

    global_settings = settings(ctx)
    store = RunStore(global_settings.db_url)
    console.print(f"run database: {store.redacted_url}")
    with FlowProgress(console, "continuum and polarimetry stages") as progress:
        made = run_demo_polarimetry(out, store=store, cluster_spec=global_settings.cluster_spec, observers=[progress],
                                    overwrite=overwrite)
    table = Table(title=f"sdpflow demo polarimetry: run {made.polarimetry_run}")
    for name in ("component", "RM true", "RM measured", "rm_err", "p true", "p measured", "S/N"):
        table.add_column(name, justify="right")
    for cat_id, rm_true, rm, rm_err, p_true, p, snr in recovery_rows(made.polarimetry_dir):
        table.add_row(cat_id, f"{rm_true:.2f}", f"{rm:.2f}", f"{rm_err:.2f}", f"{p_true:.3f}", f"{p:.3f}", f"{snr:.0f}")
    console.print(table)
    console.print(polarimetry_summary(made.polarimetry_dir), markup=False)
    console.print(f"cubes: {made.imaging_dir.resolve()} (run {made.imaging_run}); truth: {made.truth_sky.resolve()}")


def register(app: typer.Typer) -> None:
    demo_app.callback()(demo)
    demo_app.command("tiles")(demo_tiles)
    demo_app.command("polarimetry")(demo_polarimetry)
    app.add_typer(demo_app, name="demo")
