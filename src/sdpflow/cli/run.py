"""``sdpflow run PIPELINE``: validate a configuration, start a run, show its progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sdpflow.cli.common import console, settings
from sdpflow.cli.options import with_model_options
from sdpflow.cli.progress import FlowProgress
from sdpflow.config import load_config
from sdpflow.store import RunStore

run_app = typer.Typer(help="Run a pipeline.", no_args_is_help=True)

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Output folder of the run (created if missing).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML configuration file.")]
SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a configuration key: --set section.key=value (repeatable).")
]
UntilOption = Annotated[Optional[str], typer.Option("--until-stage", help="Stop after this stage.")]


def execute(
    ctx: typer.Context,
    pipeline: str,
    out: Path,
    config_path: Path | None,
    overrides: list[str] | None,
    values: dict[str, Any] | None = None,
    until_stage: str | None = None,
):
    """Validate, open the store, run the pipeline with progress bars; returns the flow result."""
    from sdpflow.pipelines import get_pipeline, start_run

    global_settings = settings(ctx)
    pipe = get_pipeline(pipeline)
    config = load_config(pipe.config_model, config_path, overrides or (), values=values)
    store = RunStore(global_settings.db_url)
    console.print(f"run database: {store.redacted_url}")
    with FlowProgress(console) as progress:
        result = start_run(
            pipeline, config, out, store=store, cluster_spec=global_settings.cluster_spec,
            observers=[progress], until_stage=until_stage,
        )
    console.print(f"run [bold]{result.run_id}[/] completed; outputs in {result.out_dir.resolve()}")
    return result


def _imaging_command(pipeline: str, doc: str):
    from sdpflow.config import config_model

    def command(
        ctx: typer.Context,
        values: dict[str, Any],
        out: OutOption = Path(f"sdpflow-{pipeline}"),
        config: ConfigOption = None,
        set_: SetOption = None,
        until_stage: UntilOption = None,
    ) -> None:
        result = execute(ctx, pipeline, out, config, set_, values=values, until_stage=until_stage)
        summary = result.out_dir / "summary.json"
        if summary.exists():
            print_imaging_summary(summary)

    command.__doc__ = doc
    command.__name__ = f"run_{pipeline}"
    run_app.command(pipeline)(with_model_options(config_model(pipeline), command))


def print_imaging_summary(path: Path) -> None:
    """The headline numbers of an imaging run."""
    import json

    summary = json.loads(path.read_text())
    beam = summary["restoring_beam"]
    cycles = summary["major_cycles_run"]
    console.print(
        f"peak {summary['peak_jy_per_beam']:.4g} Jy/beam, noise {summary['noise_jy_per_beam']:.3g} Jy/beam, "
        f"dynamic range {summary['dynamic_range']:.0f}, beam {beam['bmaj_arcsec']:.1f}″×{beam['bmin_arcsec']:.1f}″ "
        f"after {cycles} major cycle{'' if cycles == 1 else 's'} (the last stopped by {summary['stop_reason']})"
    )
    console.print(f"report: {path.parent.resolve() / 'report.html'}")


_imaging_command("ical", "ICAL: imaging with self-calibration between major cycles (options named as in WSClean).")
_imaging_command("continuum", "Continuum imaging: Cotton-Schwab major/minor cycles, no self-calibration.")


@run_app.command("demo-flow")
def run_demo_flow(
    ctx: typer.Context,
    out: OutOption = Path("sdpflow-demo-flow"),
    config: ConfigOption = None,
    set_: SetOption = None,
    until_stage: UntilOption = None,
) -> None:
    """A small two-stage flow (sum of squares on the cluster, then a report): try a cluster or the engine."""
    result = execute(ctx, "demo-flow", out, config, set_, until_stage=until_stage)
    report = result.out_dir / "report.txt"
    if report.exists():
        console.print(report.read_text().strip())


@run_app.command("flow")
def run_custom_flow(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="Your own pipeline, as package.module:ATTRIBUTE.")],
    out: OutOption = Path("sdpflow-run"),
    config: ConfigOption = None,
    set_: SetOption = None,
    until_stage: UntilOption = None,
) -> None:
    """Run a pipeline of your own, defined as an sdpflow Pipeline in an importable module."""
    execute(ctx, pipeline, out, config, set_, until_stage=until_stage)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
