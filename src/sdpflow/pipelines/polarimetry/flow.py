"""The polarimetry pipeline's stages: islands → components → cutouts → spectra → rmsynth → rmclean →
catalogue → report.

Every stage but the last two is a fan-out stage: islands, components, cutouts and spectra have
one item per island (key: its source id), rmsynth and rmclean one per component (key: its
component id, batched across components). Which islands go on is decided from the files their
items wrote (a cutout, a spectra file), so an island that failed (recorded with its reason)
drops out and the rest go on. ``sdpflow polarimetry init`` runs the first two stages alone
(:func:`build_init`).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sdpflow.config.polarimetry import PolarimetryConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.errors import InputError
from sdpflow.pipelines.polarimetry import tasks
from sdpflow.polarimetry.catalogue import Components, read_catalogue
from sdpflow.store.results import ResultTable

_COMPONENT_COLUMNS = {"source_id": str, "component_id": str, "ra": float, "dec": float, "peak_flux": float,
                      "total_flux": float, "maj": float, "min": float, "pa": float, "truth_rm": float,
                      "truth_fracpol": float, "truth_polangle": float}
#: One row per island: id, components, mean position (deg), summed total flux (Jy).
ISLANDS = ResultTable("pol_islands", {"source_id": str, "n_components": int, "ra": float, "dec": float,
                                      "total_flux": float}, indexed=("source_id",))
#: One row per component, as the catalogue gives it (deg, arcsec, Jy; truth_* for simulations).
COMPONENTS = ResultTable("pol_components", _COMPONENT_COLUMNS, indexed=("source_id", "component_id"))
#: One row per island: its cutout's pixel box in the cubes.
CUTOUTS = ResultTable("pol_cutouts", {"source_id": str, "x0": int, "y0": int, "nx": int, "ny": int, "n_chan": int},
                      indexed=("source_id",))
#: One row per component: its peak pixel in the cutout, flagged channels and median noise (Jy/beam).
SPECTRA = ResultTable("pol_spectra", {"source_id": str, "component_id": str, "peak_x": int, "peak_y": int,
                                      "n_flagged": int, "annulus_pixels": int, "noise_i": float, "noise_q": float,
                                      "noise_u": float}, indexed=("component_id",))
_MEASURED = {"component_id": str, "rm": float, "rm_err": float, "polint": float, "polint_err": float,
             "snr_polint": float, "fracpol": float, "stokesi": float, "stokesq": float, "stokesu": float,
             "polangle": float, "polangle_err": float, "derot_polangle": float, "derot_polangle_err": float,
             "reffreq_pol": float, "rmsf_fwhm": float, "nchan": int}
#: One row per component: the dirty FDF's peak (RMTable names in lower case; the rest in ``extra``).
RMSYNTH = ResultTable("pol_rmsynth", _MEASURED, indexed=("component_id",))
#: One row per component: the clean FDF's peak, clean_n_iter, mom2_cc and mom2_cc_significant (the catalogue's values).
RMCLEAN = ResultTable("pol_rmclean", {**_MEASURED, "mom2_cc": float, "mom2_cc_significant": float,
                                      "clean_n_iter": int}, indexed=("component_id",))


def island_stem(source_id: str) -> str:
    """A file name for an island: its id where that is a safe name, else a cleaned id and a hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", source_id).strip(".") or "island"
    if safe == source_id:
        return safe
    return f"{safe[:80]}-{hashlib.sha1(source_id.encode()).hexdigest()[:8]}"


@lru_cache(maxsize=4)
def _catalogue(path: str, size: int, mtime_ns: int, columns: tuple[tuple[str, Any], ...], flux_unit: str) -> Components:
    return read_catalogue(path, dict(columns), flux_unit=flux_unit)


def load_catalogue(config: PolarimetryConfig) -> Components:
    """The configured catalogue, read once per file version."""
    if not config.catalogue:
        raise InputError("polarimetry: no catalogue: give --catalogue FILE (FITS, VOTable or CSV)")
    path = Path(config.catalogue)
    if not path.is_file():
        raise InputError(f"polarimetry: catalogue {path} does not exist or is not a file: check the path")
    stat = path.stat()
    columns = config.columns.model_dump()
    flux_unit = columns.pop("flux_unit")
    return _catalogue(str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(sorted(columns.items())), flux_unit)


def cube_paths(config: PolarimetryConfig) -> list[str]:
    """The I, Q, U cubes: an imaging run's restored-S.fits, or the three named."""
    if config.images is not None:
        folder = Path(config.images)
        if not folder.is_dir():
            raise InputError(f"polarimetry: --images {folder} is not a folder: give an imaging run's output folder")
        paths = [folder / f"restored-{stokes}.fits" for stokes in "IQU"]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise InputError(f"polarimetry: {folder} has no {', '.join(missing)}: image it with "
                             "`sdpflow run continuum --pol IQU --channels-out N`, or give --i-cube, --q-cube, --u-cube")
        return [str(path.resolve()) for path in paths]
    if config.i_cube is None:
        raise InputError("polarimetry: no cubes: give --images DIR (an imaging run) or --i-cube, --q-cube and --u-cube; "
                         "`sdpflow polarimetry init CATALOGUE` loads the catalogue alone")
    for path in (config.i_cube, config.q_cube, config.u_cube):
        if not Path(path).is_file():
            raise InputError(f"polarimetry: cube {path} does not exist or is not a file: check the path")
    return [str(Path(path).resolve()) for path in (config.i_cube, config.q_cube, config.u_cube)]


def _fingerprint(path: str) -> str:
    stat = Path(path).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _load_stages(config: PolarimetryConfig) -> list[Stage]:
    load_catalogue(config)  # bad input stops here, before a run is recorded
    stage_config = {"catalogue": str(Path(config.catalogue).resolve()), "columns": config.columns.model_dump()}
    policy = {"max_failed_fraction": config.max_failed_fraction}

    def island_items(ctx) -> list[Item]:
        current = load_catalogue(config)
        return [Item(source, (source, [current.row(int(i)) for i in rows])) for source, rows in current.islands().items()]

    return [
        Stage("islands", fan_out=FanOut(island_items, tasks.load_island, table=ISLANDS, **policy), config=stage_config),
        Stage("components", fan_out=FanOut(island_items, tasks.load_components, table=COMPONENTS, **policy),
              after=("islands",), config=stage_config),
    ]


def build_init(config: PolarimetryConfig) -> list[Stage]:
    """The stages of ``sdpflow polarimetry init``: islands and components into the run database."""
    return _load_stages(config)


def build(config: PolarimetryConfig) -> list[Stage]:
    """The stages for a validated configuration (catalogue and cubes checked here, before a run is recorded)."""
    from sdpflow.polarimetry.cubes import check_alike, open_cube

    stages = _load_stages(config)
    cubes = cube_paths(config)
    check_alike([open_cube(path) for path in cubes])
    policy = {"max_failed_fraction": config.max_failed_fraction}
    cut_settings = {"cubes": cubes, "padding_beams": config.cutout_padding_beams,
                    "cube_versions": [_fingerprint(path) for path in cubes]}
    spectra_settings = {"annulus_beams": list(config.annulus_beams), "flag_sigma": config.flag_sigma,
                        "min_channels": config.min_channels}
    rm_settings = {"n_samples": config.n_samples, "phi_max": config.phi_max, "poly_ord": config.poly_ord,
                   "cutoff": config.cutoff, "gain": config.gain, "max_iter": config.max_iter}

    def islands_with(ctx, path_of) -> list[tuple[str, str, list[dict[str, Any]]]]:
        current = load_catalogue(config)
        found = []
        for source, rows in current.islands().items():
            stem = island_stem(source)
            if path_of is None or (Path(ctx.out_dir) / path_of(stem)).exists():
                found.append((source, stem, [current.row(int(i)) for i in rows]))
        return found

    def cutout_items(ctx) -> list[Item]:
        return [Item(source, (source, stem, [c["ra"] for c in comps], [c["dec"] for c in comps],
                              [c["maj"] if c["maj"] is not None else float("nan") for c in comps], cut_settings))
                for source, stem, comps in islands_with(ctx, None)]

    def spectra_items(ctx) -> list[Item]:
        return [Item(source, (source, stem, [c["component_id"] for c in comps], [c["ra"] for c in comps],
                              [c["dec"] for c in comps], spectra_settings))
                for source, stem, comps in islands_with(ctx, tasks.cutout_path)]

    def component_items(ctx) -> list[Item]:
        return [Item(c["component_id"], (stem, row, rm_settings))
                for _, stem, comps in islands_with(ctx, tasks.spectra_path) for row, c in enumerate(comps)]

    def catalogue(ctx) -> None:
        from sdpflow.pipelines.polarimetry.products import write_catalogue

        write_catalogue(ctx, config, cubes)

    def report(ctx) -> None:
        from sdpflow.engine.futures import gather
        from sdpflow.pipelines.polarimetry.report import write_polarimetry_report

        client = ctx.client

        def on_workers(function, jobs):  # the figures are drawn on the workers, in parallel
            return gather(client.map(function, list(jobs), pure=False))

        write_polarimetry_report(ctx.out_dir, ctx.output("report.html"), map_function=on_workers,
                                 final_path=ctx.product("report.html"))

    from sdpflow.pipelines.polarimetry.products import PEAK_MAPS, catalogue_outputs, write_peak_maps

    stages += [
        Stage("cutouts", fan_out=FanOut(cutout_items, tasks.cut_island, table=CUTOUTS, **policy),
              after=("components",), config=cut_settings),
        Stage("spectra", fan_out=FanOut(spectra_items, tasks.measure_spectra, table=SPECTRA, **policy),
              after=("cutouts",), config=spectra_settings),
        Stage("rmsynth", fan_out=FanOut(component_items, batch_function=tasks.rmsynth_batch, table=RMSYNTH,
                                        target_batch_s=0.5, **policy), after=("spectra",), config=rm_settings),
        Stage("rmclean", fan_out=FanOut(component_items, batch_function=tasks.rmclean_batch, table=RMCLEAN,
                                        target_batch_s=0.5, **policy), after=("rmsynth",), config=rm_settings),
        Stage("catalogue", catalogue, outputs=catalogue_outputs(config), after=("rmclean",),
              config={"snr_threshold": config.snr_threshold, "complexity_fwhm": config.complexity_fwhm}),
    ]
    report_after = ("catalogue",)
    if config.rmsynth3d:
        settings_3d = {"cubes": cubes, "cube_versions": cut_settings["cube_versions"], "n_samples": config.n_samples,
                       "phi_max": config.phi_max}
        n_rows = open_cube(cubes[0]).data.shape[1]
        step = config.rmsynth3d_rows

        def row_items(ctx) -> list[Item]:
            return [Item(f"rows-{y0:05d}", (y0, min(y0 + step, n_rows), settings_3d)) for y0 in range(0, n_rows, step)]

        def peak_maps(ctx) -> None:
            write_peak_maps(ctx, cubes[0], [y0 for y0 in range(0, n_rows, step)])

        stages += [
            Stage("rmsynth3d", fan_out=FanOut(row_items, tasks.rmsynth3d_rows), after=("components",),
                  config={**settings_3d, "rows": step}),
            Stage("peak-maps", peak_maps, outputs=PEAK_MAPS, after=("rmsynth3d",)),
        ]
        report_after = ("catalogue", "peak-maps")
    stages.append(Stage("report", report, outputs=("report.html", "report-figures"), after=report_after))
    return stages
