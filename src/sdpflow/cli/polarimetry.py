"""``sdpflow polarimetry init CATALOGUE``: a Stokes I catalogue's islands and components into the run database.

``sdpflow run polarimetry`` (a registered pipeline, see ``sdpflow run``) runs the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sdpflow.cli.common import console, settings
from sdpflow.cli.run import ConfigOption, SetOption

polarimetry_app = typer.Typer(help="The polarimetry pipeline's own commands (`sdpflow run polarimetry` runs it).",
                              no_args_is_help=True)

#: The pipeline value ``init`` runs (the catalogue-loading stages alone).
INIT_PIPELINE = "sdpflow.pipelines.polarimetry:POLARIMETRY_INIT"


@polarimetry_app.command("init")
def init(
    ctx: typer.Context,
    catalogue: Annotated[Path, typer.Argument(help="Stokes I catalogue (FITS, VOTable or CSV) of islands and components.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the run's event log.")] = Path("sdpflow-polarimetry-init"),
    db: Annotated[Optional[str], typer.Option("--db", help="Run database URL (default: the global --db).")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Load the islands and components of a catalogue into typed, indexed result tables
    (pol_islands, pol_components) of the run database. Columns are mapped with
    --set columns.ra=RA_DEG ... (RACS names by default)."""
    from sdpflow.cli.run import execute

    if db is not None:
        settings(ctx).db_url = db
    result = execute(ctx, INIT_PIPELINE, out, config, set_, values={"catalogue": str(catalogue)})
    from sdpflow.store import RunStore

    store = RunStore(settings(ctx).db_url)
    islands = len(store.result_rows(result.run_id, "pol_islands"))
    components = len(store.result_rows(result.run_id, "pol_components"))
    console.print(f"loaded {islands} islands and {components} components into tables pol_islands and pol_components "
                  f"of run {result.run_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(polarimetry_app, name="polarimetry")
