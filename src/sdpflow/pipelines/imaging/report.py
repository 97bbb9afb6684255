"""The imaging pipelines' section of the report: observation, parameters, image statistics,
sources, the truth (for a simulated observation), major cycles, images and gains.

Everything is read from the run's folder and its MeasurementSet; the figures are drawn by
:func:`sdpflow.pipelines.imaging.report_figures.render_imaging_figure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sdpflow.pipelines.imaging.summary import format_channel_beams, format_noise, read_summary
from sdpflow.pipelines.imaging.summary import format_figure as _figure
from sdpflow.report.html import FigureSpec, ReportSection, Table

#: (file, title, figure kind) of the images drawn.
IMAGES = (("restored.fits", "restored", "image"), ("residual.fits", "residual", "residual"), ("psf.fits", "PSF", "psf"))
#: Most rows of the source and truth tables.
MOST_ROWS = 30


def imaging_section(run_dir: str | Path, config: dict[str, Any] | None = None) -> ReportSection:
    """The section of an imaging run, from its summary and files; ``config``: the run's configuration
    (a dict as ``model_dump`` gives; else the run folder's ``config.yaml`` when there is one)."""
    from sdpflow.radio import hdf5

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    beam, image = summary.restoring_beam, summary.image
    rows = [
        ("pipeline", summary.pipeline), ("MeasurementSet", summary.ms),
        *observation_rows(summary.ms),
        *parameter_rows(config if config is not None else _config_file(run_dir)),
        ("image", f"{image.size[0]} × {image.size[1]} pixels of {image.cell_arcsec:.2f} arcsec"),
        ("restoring beam", f"{beam.bmaj_arcsec:.1f}″ × {beam.bmin_arcsec:.1f}″, PA {beam.bpa_deg:.1f}°"),
        *([("noise per Stokes parameter (MAD)", format_noise(summary))] if len(summary.stokes_noise_jy_per_beam) > 1 else []),
        *([("restoring beam per channel", format_channel_beams(summary))] if len(summary.channel_beams) > 1 else []),
        ("major cycles", f"{summary.major_cycles_run} run of {len(summary.cycles)} allowed "
                         f"(the last stopped by {summary.stop_reason})"),
        ("chunks", str(summary.chunks)),
        ("samples flagged as non-finite", str(summary.non_finite_flagged)),
    ]

    def tables() -> list[Table]:  # made while the figures draw
        return [statistics_table(run_dir, summary), cycles_table(summary), sources_table(run_dir, summary),
                *truth_tables(run_dir, summary)]
    figures: list[FigureSpec] = [(kind, name, title) for name, title, kind in IMAGES if (run_dir / name).exists()]
    if (run_dir / "residual.fits").exists():
        figures.append(("histogram", "residual.fits", "residual histogram with the Gaussian of the MAD σ"))
    figures += [("uv", "", "uv coverage"), ("cycles", "", "residual per major cycle")]
    if (run_dir / "gains.h5").exists():
        modes = {table.mode for table in hdf5.read_gaintables_hdf5(run_dir / "gains.h5").values()}
        if modes - {"B"}:
            figures.append(("gain-panels", "phase", "gain phase per antenna against time"))
        if modes & {"G"}:
            figures.append(("gain-panels", "amplitude", "gain amplitude per antenna against time"))
        if "B" in modes:
            figures += [("gain-panels", "phase:B", "bandpass phase per antenna against frequency"),
                        ("gain-panels", "amplitude:B", "bandpass amplitude per antenna against frequency")]
    links = [(name, name) for name in ("restored.fits", "residual.fits", "model.fits", "psf.fits", "dirty.fits",
                                       "gains.h5", "summary.json")]
    from sdpflow.pipelines.imaging.report_figures import render_imaging_figure

    return ReportSection(f"{summary.pipeline} imaging", rows, tables, figures, render_imaging_figure, links)


def observation_rows(ms: str) -> list[tuple[str, str]]:
    """Frequency, bandwidth, date, visibility count and flagged fraction of the MeasurementSet ``ms``."""
    from astropy.time import Time

    from sdpflow.errors import DataError
    from sdpflow.radio.ms import read_ms_metadata
    from sdpflow.radio.ms_summary import flag_fraction

    try:
        metadata = read_ms_metadata(ms)
        flagged = flag_fraction(ms)
    except DataError as error:  # the MS moved since the run: the report still comes out
        return [("observation", f"not readable now ({error})")]
    start, end = Time(np.array([metadata.times.min(), metadata.times.max()]) / 86400, format="mjd", scale="utc").isot
    low, high = float(metadata.frequency.min()), float(metadata.frequency.max())
    return [
        ("frequency", f"{low / 1e6:.3f} – {high / 1e6:.3f} MHz ({len(metadata.frequency)} channels)"),
        ("bandwidth", f"{float(np.sum(metadata.channel_width)) / 1e6:.3f} MHz"),
        ("observed", f"{start[:19]} – {end[:19]} UTC"),
        ("telescope", f"{metadata.telescope}, {metadata.n_antennas} antennas"),
        ("visibilities", f"{metadata.n_rows * len(metadata.frequency):,} ({metadata.n_rows:,} rows × "
                         f"{len(metadata.frequency)} channels × {len(metadata.polarisation)} correlations)"),
        ("flagged", f"{100 * flagged:.2f}% of samples"),
    ]


def parameter_rows(config: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Weighting, CLEAN and calibration settings of the run's configuration (none when unknown)."""
    if not config:
        return []
    imaging, clean = config.get("imaging", {}), config.get("deconvolution", {})
    rows = [("weighting", str(imaging.get("weight"))),
            ("niter / nmajor", f"{clean.get('niter')} / {clean.get('nmajor')}"),
            ("threshold", f"{clean.get('threshold')} Jy/beam, auto-threshold {clean.get('auto_threshold')}σ, "
                          f"mgain {clean.get('mgain')}, gain {clean.get('gain')}")]
    calibration = config.get("calibration")
    if calibration:
        rows.append(("calibration", ", ".join(f"{name} every {calibration.get(name, {}).get('timeslice')} s from cycle "
                                              f"{calibration.get(name, {}).get('first_selfcal')}"
                                              for name in calibration.get("context", []))))
    return rows


def _config_file(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else None


def image_statistics(data: np.ndarray) -> dict[str, float]:
    """Peak, RMS and MAD σ (the image's units) of an image's finite pixels."""
    from sdpflow.radio.deconvolution import mad_sigma

    finite = data[np.isfinite(data)]
    return {"peak": float(finite.max()), "rms": float(np.sqrt(np.mean(finite ** 2))), "mad": float(mad_sigma(finite))}


def statistics_table(run_dir: Path, summary) -> Table:
    """Peak, RMS, MAD σ and dynamic range (peak of the restored image over the residual's MAD σ) of each image."""
    from sdpflow.radio import fits

    rows = []
    noise = summary.noise_jy_per_beam
    for name in ("restored.fits", "residual.fits", "dirty.fits"):
        if (run_dir / name).exists():
            stats = image_statistics(fits.read_fits_image(run_dir / name).data[:, 0])
            dynamic = stats["peak"] / noise if noise else float("nan")
            rows.append([name, f"{stats['peak']:.4g}", f"{stats['rms']:.3g}", f"{stats['mad']:.3g}", f"{dynamic:.0f}"])
    return Table("Image statistics", ["image", "peak (Jy/beam)", "RMS (Jy/beam)", "MAD σ (Jy/beam)",
                                      "peak / residual MAD σ"], rows)


def cycles_table(summary) -> Table:
    """One row per major cycle; cycles carried on without cleaning are shown as skipped."""
    rows = []
    for c in summary.cycles:
        if c.skipped:
            rows.append([str(c.cycle), f"skipped ({c.skipped})", "", "", "", ""])
            continue
        rows.append([str(c.cycle), _figure(c.peak_residual_jy, ".4g"), _figure(c.rms_residual_jy, ".3g"),
                     str(c.components), str(c.stop_reason), ", ".join(c.calibrated_terms) or "-"])
    return Table("Major cycles", ["cycle", "peak residual (Jy/beam)", "RMS (Jy/beam)", "components", "stopped by",
                                  "gains solved"], rows)


def sources_table(run_dir: Path, summary) -> Table:
    """Sources of the clean model (components merged within a beam FWHM), brightest first: position, flux, S/N."""
    from sdpflow.radio import fits
    from sdpflow.radio.sources import merge_components

    columns = ["RA (deg)", "Dec (deg)", "flux (Jy)", "S/N (restored / MAD σ)"]
    if not (run_dir / "model.fits").exists() or not (run_dir / "restored.fits").exists():
        return Table("Sources in the model", columns, [])
    model, restored = fits.read_fits_image(run_dir / "model.fits"), fits.read_fits_image(run_dir / "restored.fits")
    beam_pixels = summary.restoring_beam.bmaj_arcsec / summary.image.cell_arcsec
    x, y, flux = merge_components(np.nanmean(model.data[:, 0], axis=0), beam_pixels)
    ra, dec = restored.wcs.celestial.pixel_to_world_values(x, y)
    plane = np.nanmean(restored.data[:, 0], axis=0)
    noise = summary.noise_jy_per_beam or np.nan
    peaks = plane[np.clip(np.round(y).astype(int), 0, plane.shape[0] - 1), np.clip(np.round(x).astype(int), 0, plane.shape[1] - 1)]
    rows = [[f"{r:.5f}", f"{d:.5f}", f"{f:.4g}", f"{p / noise:.0f}"]
            for r, d, f, p in list(zip(ra, dec, flux, peaks))[:MOST_ROWS]]
    return Table("Sources in the model", columns, rows,
                 note=f"{len(flux)} sources from the clean components merged within {beam_pixels:.1f} pixels (the beam's "
                      f"FWHM); the {min(len(flux), MOST_ROWS)} brightest; S/N: the restored image there over the MAD σ.")


def truth_tables(run_dir: Path, summary) -> list[Table]:
    """For a simulated observation (``truth_sky.csv`` beside the MS): the demo's assessment and each source."""
    from sdpflow.pipelines.demo import judge, measure_truth
    from sdpflow.pipelines.simulate import TRUE_GAINS, TRUTH_SKY

    folder = Path(summary.ms).parent
    if not (folder / TRUTH_SKY).is_file():
        return []
    gains = folder / TRUE_GAINS
    found, noise = measure_truth(run_dir, folder / TRUTH_SKY, summary)
    result = judge(run_dir, found, noise, summary, gains if gains.is_file() else None)
    measures = [("truth sources above 10σ", str(result.sources_above_10_sigma)),
                ("median flux ratio (restored / truth)", f"{result.median_flux_ratio:.3f}"),
                ("worst flux error, sources above 100σ", f"{100 * result.worst_flux_error_above_100_sigma:.1f}%"),
                ("worst flux error, sources above 10σ", f"{100 * result.worst_flux_error:.1f}%"),
                ("worst position offset", f"{result.worst_offset_pixels:.2f} pixels")]
    if result.phase_error_before_deg is not None:
        measures = [("gain phase error RMS before calibration", f"{result.phase_error_before_deg:.1f}°"),
                    ("gain phase error RMS after ICAL", f"{result.phase_error_after_deg:.2f}°"), *measures]
    found.sort(key=lambda source: -source.true_flux_jy)
    sources = [[f"{s.ra_deg:.5f}", f"{s.dec_deg:.5f}", f"{s.true_flux_jy:.4g}", f"{s.measured_flux_jy:.4g}",
                f"{s.flux_ratio:.3f}", f"{s.offset_pixels:.2f}", f"{s.snr:.0f}"] for s in found[:MOST_ROWS]]
    return [Table("Against the truth", ["measure", "value"], [list(row) for row in measures],
                  note=f"the simulation's truth: {folder / TRUTH_SKY}"),
            Table("Truth sources above 10σ", ["RA (deg)", "Dec (deg)", "true flux (Jy)", "measured (Jy)", "ratio",
                                              "offset (pixels)", "S/N"], sources)]
