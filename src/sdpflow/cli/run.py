"""``sdpflow run PIPELINE``: validate a configuration, start a run, show its progress.

One command per registered pipeline (the ``sdpflow.pipelines`` entry points), made from its
:class:`~sdpflow.pipelines.Pipeline` value when first asked for, so that a command line that
runs one pipeline imports only that one; plus ``run flow module:ATTRIBUTE`` for your own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperGroup

from sdpflow.cli.common import console, settings
from sdpflow.cli.options import with_model_options
from sdpflow.cli.progress import FlowProgress
from sdpflow.errors import SdpflowError

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Output folder of the run (created if missing).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML configuration file.")]
SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a configuration key: --set section.key=value (repeatable).")
]
UntilOption = Annotated[Optional[str], typer.Option("--until-stage", help="Stop after this stage.")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Write into a folder holding files sdpflow did not write (none of them is replaced).")
]


class PipelineCommands(TyperGroup):
    """The commands of ``sdpflow run``: one per registered pipeline, made on demand, then the fixed ones."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from sdpflow.pipelines import available_pipelines

        fixed = super().list_commands(ctx)
        return [name for name in available_pipelines() if name not in fixed] + fixed

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from sdpflow.pipelines import available_pipelines

        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in available_pipelines():
            command = pipeline_command(cmd_name)
        return command


run_app = typer.Typer(help="Run a pipeline.", no_args_is_help=True, cls=PipelineCommands)


def execute(
    ctx: typer.Context,
    pipeline: str,
    out: Path,
    config_path: Path | None,
    overrides: list[str] | None,
    values: dict[str, Any] | None = None,
    until_stage: str | None = None,
    overwrite: bool = False,
):
    """Validate, open the store, run the pipeline with progress bars, print its summary; returns the flow result."""
    from sdpflow.pipelines.runner import configure, start_run
    from sdpflow.store import RunStore

    global_settings = settings(ctx)
    pipe, config = configure(pipeline, config_path, overrides or (), values)
    store = RunStore(global_settings.db_url)
    console.print(f"run database: {store.redacted_url}")
    with FlowProgress(console) as progress:
        result = start_run(
            pipeline, config, out, store=store, cluster_spec=global_settings.cluster_spec,
            observers=[progress], until_stage=until_stage, overwrite=overwrite,
        )
    console.print(f"run [bold]{result.run_id}[/] completed; outputs in {result.out_dir.resolve()}")
    summary = pipe.summary(result.out_dir) if pipe.summary is not None else ""
    if summary:
        console.print(summary, markup=False)
    return result


def pipeline_command(name: str) -> click.Command:
    """``sdpflow run NAME`` for a registered pipeline: its configuration's flags plus the common options.

    A pipeline that cannot be loaded still gets a command, which says why when it is run.
    """
    from sdpflow.pipelines import get_pipeline

    try:
        pipeline = get_pipeline(name)
    except SdpflowError as error:
        return _broken_command(name, error)

    def command(
        ctx: typer.Context,
        values: dict[str, Any],
        out: OutOption = Path(f"sdpflow-{name}"),
        config: ConfigOption = None,
        set_: SetOption = None,
        until_stage: UntilOption = None,
        overwrite: OverwriteOption = False,
    ) -> None:
        execute(ctx, name, out, config, set_, values=values, until_stage=until_stage, overwrite=overwrite)

    command.__doc__ = pipeline.description or f"Run the {name} pipeline."
    command.__name__ = f"run_{name.replace('-', '_')}"
    app = typer.Typer(add_completion=False)
    app.command(name)(with_model_options(pipeline.config_model, command))
    return typer.main.get_command(app)


def _broken_command(name: str, error: SdpflowError) -> click.Command:
    """A command for a registered pipeline that cannot be loaded: listed, and failing with the reason."""

    def fail() -> None:
        raise error

    return click.Command(name, callback=fail, help=f"(cannot be loaded: {error})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@run_app.command("flow")
def run_custom_flow(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="Your own pipeline, as package.module:ATTRIBUTE.")],
    out: OutOption = Path("sdpflow-run"),
    config: ConfigOption = None,
    set_: SetOption = None,
    until_stage: UntilOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run a pipeline of your own, defined as an sdpflow Pipeline in an importable module."""
    execute(ctx, pipeline, out, config, set_, until_stage=until_stage, overwrite=overwrite)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
