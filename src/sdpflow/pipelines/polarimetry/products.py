"""The polarimetry pipeline's catalogue: RMTable (v1.3) columns as FITS and VOTable, a summary, a truth match.

Built from the run database's result tables (``pol_components``, ``pol_spectra``,
``pol_rmclean``): one row per component measured. Column names and units are RMTable's; the
flags beside them are sdpflow's: ``snr_flag`` (snr_polint below ``snr_threshold``),
``channel_flag`` (more than half the channels flagged) and RMTable's ``complex_flag`` ('Y'
where the second moment of the clean components of at least 2σ, also ``rm_width``, exceeds
``complexity_fwhm`` × rmsf_fwhm; RM-Tools' ``mom2CCFDF`` over all clean components, which noise
peaks make several FWHM wide even for a Faraday-thin source, is kept as ``mom2_cc`` in the run
database).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sdpflow.config.polarimetry import PolarimetryConfig

CATALOGUE_FITS = "catalogue.fits"
CATALOGUE_VOT = "catalogue.vot"
SUMMARY = "summary.json"
TRUTH_MATCH = "truth_match.csv"
#: The rmsynth3d maps: peak polarised intensity (Jy/beam per RMSF) and its Faraday depth (rad/m²).
PEAK_MAPS = ("peak_pi.fits", "peak_rm.fits")
#: The fraction of flagged channels above which channel_flag is set.
CHANNEL_FLAG_FRACTION = 0.5
#: Polarised signal-to-noise above which the truth comparison counts a component.
TRUTH_SNR = 10.0

#: RMTable columns written, with their units ("" for none).
RMTABLE_UNITS = {
    "cat_id": "", "source_id": "", "ra": "deg", "dec": "deg", "l": "deg", "b": "deg",
    "rm": "rad / m2", "rm_err": "rad / m2", "rm_width": "rad / m2", "rmsf_fwhm": "rad / m2",
    "complex_flag": "", "complex_test": "", "rm_method": "", "ionosphere": "", "Ncomp": "",
    "stokesI": "Jy", "stokesI_err": "Jy", "spectral_index": "", "stokesI_fit_flag": "",
    "polint": "Jy", "polint_err": "Jy", "pol_bias": "", "flux_type": "", "snr_polint": "",
    "fracpol": "", "fracpol_err": "", "polangle": "deg", "polangle_err": "deg",
    "derot_polangle": "deg", "derot_polangle_err": "deg", "stokesQ": "Jy", "stokesU": "Jy",
    "reffreq_pol": "Hz", "noise_chan": "Jy", "Nchan": "", "minfreq": "Hz", "maxfreq": "Hz",
    "channelwidth": "Hz", "beam_maj": "deg", "beam_min": "deg", "beam_pa": "deg",
    "snr_flag": "", "channel_flag": "",
}


def catalogue_outputs(config: PolarimetryConfig) -> tuple[str, ...]:
    truth = config.columns.truth_rm is not None
    return (CATALOGUE_FITS, CATALOGUE_VOT, SUMMARY, *((TRUTH_MATCH,) if truth else ()))


def catalogue_table(components: list[dict], spectra: list[dict], measured: list[dict], *, frequency_hz: np.ndarray,
                    beams: np.ndarray, snr_threshold: float, complexity_fwhm: float):
    """The RMTable as an astropy Table (one row per measured component, in component order)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    by_id = {row["component_id"]: row for row in components}
    noise = {row["component_id"]: row for row in spectra}
    islands: dict[str, int] = {}
    for row in components:
        islands[row["source_id"]] = islands.get(row["source_id"], 0) + 1
    rows = [row for row in measured if row["component_id"] in by_id and row["component_id"] in noise]
    n = len(rows)
    take = lambda name: np.array([np.nan if row.get(name) is None else row[name] for row in rows], dtype=float)  # noqa: E731
    extra = lambda name: np.array([np.nan if (row.get("extra") or {}).get(name) is None  # noqa: E731
                                   else row["extra"][name] for row in rows], dtype=float)
    comp = [by_id[row["component_id"]] for row in rows]
    spec = [noise[row["component_id"]] for row in rows]
    ra = np.array([c["ra"] for c in comp], dtype=float)
    dec = np.array([c["dec"] for c in comp], dtype=float)
    galactic = SkyCoord(ra * u.deg, dec * u.deg, frame="fk5").galactic if n else None
    nchan = np.array([row.get("nchan") or 0 for row in rows], dtype=int)
    n_flagged = np.array([s["n_flagged"] for s in spec], dtype=int)
    polint, polint_err, stokes_i = take("polint"), take("polint_err"), take("stokesi")
    noise_i = np.array([np.nan if s["noise_i"] is None else s["noise_i"] for s in spec])
    stokes_i_err = noise_i / np.sqrt(np.maximum(nchan, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        fracpol = polint / stokes_i
        fracpol_err = np.abs(fracpol) * np.hypot(polint_err / polint, stokes_i_err / stokes_i)
    reffreq = take("reffreq_pol")
    nearest = np.array([int(np.argmin(np.abs(frequency_hz - f))) if np.isfinite(f) else 0 for f in reffreq], dtype=int)
    mom2 = take("mom2_cc_significant")
    fwhm = take("rmsf_fwhm")
    snr = take("snr_polint")
    columns: dict[str, Any] = {
        "cat_id": [row["component_id"] for row in rows], "source_id": [c["source_id"] for c in comp],
        "ra": ra, "dec": dec, "l": galactic.l.deg if n else np.zeros(0), "b": galactic.b.deg if n else np.zeros(0),
        "rm": take("rm"), "rm_err": take("rm_err"), "rm_width": mom2, "rmsf_fwhm": fwhm,
        "complex_flag": np.where(np.nan_to_num(mom2) > complexity_fwhm * fwhm, "Y", "N"),
        "complex_test": ["Second moment of the clean components above 2 sigma"] * n,
        "rm_method": ["RM Synthesis - Fractional polarization"] * n, "ionosphere": ["None"] * n,
        "Ncomp": np.array([islands[c["source_id"]] for c in comp], dtype=int),
        "stokesI": stokes_i, "stokesI_err": stokes_i_err, "spectral_index": extra("spectral_index"),
        "stokesI_fit_flag": np.array([int((row.get("extra") or {}).get("stokes_i_fit_flag") or 0) for row in rows],
                                     dtype=int),
        "polint": polint, "polint_err": polint_err, "pol_bias": ["2012PASA...29..214G"] * n, "flux_type": ["Peak"] * n,
        "snr_polint": snr, "fracpol": fracpol, "fracpol_err": fracpol_err,
        "polangle": take("polangle"), "polangle_err": take("polangle_err"),
        "derot_polangle": take("derot_polangle"), "derot_polangle_err": take("derot_polangle_err"),
        "stokesQ": take("stokesq"), "stokesU": take("stokesu"), "reffreq_pol": reffreq,
        "noise_chan": np.array([np.nanmean([s["noise_q"] or np.nan, s["noise_u"] or np.nan]) for s in spec]),
        "Nchan": nchan, "minfreq": np.full(n, frequency_hz.min()), "maxfreq": np.full(n, frequency_hz.max()),
        "channelwidth": np.full(n, float(np.abs(np.diff(frequency_hz)).mean()) if frequency_hz.size > 1 else np.nan),
        "beam_maj": np.degrees(beams[nearest, 0]), "beam_min": np.degrees(beams[nearest, 1]),
        "beam_pa": np.degrees(beams[nearest, 2]),
        "snr_flag": ~(np.nan_to_num(snr) >= snr_threshold),
        "channel_flag": n_flagged > CHANNEL_FLAG_FRACTION * frequency_hz.size,
    }
    table = Table()
    for name, unit in RMTABLE_UNITS.items():
        values = columns[name]
        if isinstance(values, list):
            values = np.array(values, dtype=str) if values else np.zeros(0, dtype="U1")
        table[name] = values
        if unit:
            table[name].unit = u.Unit(unit)
    return table


def truth_match(table, components: list[dict]) -> dict[str, Any]:
    """RM recovery against the catalogue's truth columns, over components with snr_polint > TRUTH_SNR."""
    by_id = {row["component_id"]: row for row in components}
    truth = np.array([np.nan if by_id[cid].get("truth_rm") is None else by_id[cid]["truth_rm"]
                      for cid in table["cat_id"]], dtype=float)
    rm, err, snr = (np.asarray(table[name], dtype=float) for name in ("rm", "rm_err", "snr_polint"))
    fwhm = np.asarray(table["rmsf_fwhm"], dtype=float)
    use = np.isfinite(truth) & np.isfinite(rm) & (snr > TRUTH_SNR)
    if not use.any():
        return {"compared": 0}
    delta = np.abs(rm[use] - truth[use])
    return {"compared": int(use.sum()), "within_3_sigma": float(np.mean(delta < 3 * err[use])),
            "median_abs_delta_rm_radm2": float(np.median(delta)),
            "median_abs_delta_rm_fwhm": float(np.median(delta / fwhm[use]))}


def write_catalogue(ctx, config: PolarimetryConfig, cubes: list[str]) -> None:
    """The catalogue stage: RMTable as FITS and VOTable, summary.json (and truth_match.csv for simulations)."""
    from sdpflow.polarimetry.cubes import open_cube

    components = _rows(ctx, "pol_components")
    spectra = _rows(ctx, "pol_spectra")
    measured = _rows(ctx, "pol_rmclean")
    cube = open_cube(cubes[0])
    table = catalogue_table(components, spectra, measured, frequency_hz=cube.frequency_hz, beams=cube.beams,
                            snr_threshold=config.snr_threshold, complexity_fwhm=config.complexity_fwhm)
    table.meta["CATALOG"] = "sdpflow polarimetry"
    table.meta["RMTABLE"] = "1.3"
    table.write(ctx.output(CATALOGUE_FITS), format="fits", overwrite=True)
    table.write(ctx.output(CATALOGUE_VOT), format="votable", overwrite=True)
    measured_ids = set(table["cat_id"].tolist())
    islands_all = sorted({row["source_id"] for row in components})
    islands_measured = {row["source_id"] for row in spectra}
    failed = [source for source in islands_all if source not in islands_measured]
    summary: dict[str, Any] = {
        "islands": len(islands_all), "components": len(components), "components_measured": len(measured_ids),
        "islands_failed": len(failed), "islands_failed_first": failed[:50],
        "polarised_above_snr_threshold": int(np.count_nonzero(~np.asarray(table["snr_flag"], dtype=bool))),
        "snr_threshold": config.snr_threshold,
        "rmsf_fwhm_radm2": float(table["rmsf_fwhm"][0]) if len(table) else None,
    }
    if config.columns.truth_rm is not None:
        summary["truth"] = truth_match(table, components)
        _write_truth_csv(ctx.output(TRUTH_MATCH), table, components)
    ctx.output(SUMMARY).write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")


def _rows(ctx, table: str) -> list[dict]:
    """The run's rows of a result table; none when no item ever wrote it (every island failed before)."""
    from sdpflow.errors import RunNotFound

    try:
        return ctx.result_rows(table)
    except RunNotFound:
        return []


def _write_truth_csv(path: Path, table, components: list[dict]) -> None:
    import csv

    by_id = {row["component_id"]: row for row in components}
    names = ("rm", "rm_err", "fracpol", "fracpol_err", "derot_polangle", "derot_polangle_err", "snr_polint", "rmsf_fwhm")
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["cat_id", *names, "truth_rm", "truth_fracpol", "truth_polangle"])
        for index, cat_id in enumerate(table["cat_id"]):
            truth = by_id[str(cat_id)]
            writer.writerow([cat_id, *(repr(float(table[name][index])) for name in names),
                             *(repr(float("nan") if truth.get(key) is None else float(truth[key]))
                               for key in ("truth_rm", "truth_fracpol", "truth_polangle"))])


def write_peak_maps(ctx, cube_path: str, row_starts: list[int]) -> None:
    """The peak-maps stage: the rmsynth3d row blocks into ``peak_pi.fits`` and ``peak_rm.fits`` (2-D, the
    cube's sky WCS). Pixels without a measurement (blank in the cube, or a peak beyond the axis) are 0,
    counted in the header's NBLANK."""
    from astropy.io import fits

    from sdpflow.polarimetry.cubes import open_cube

    cube = open_cube(cube_path)
    parts = {"peak_pi": [], "peak_rm": []}
    for y0 in row_starts:
        path = ctx.product(f"rmsynth3d/rows-{y0:05d}.npz")
        if not path.exists():
            raise RuntimeError(f"rmsynth3d rows from {y0} are missing: resume the run to redo them")
        with np.load(path) as stored:
            for name in parts:
                parts[name].append(stored[name])
    units = {"peak_pi": "JY/BEAM", "peak_rm": "rad/m2"}
    for name, output in zip(parts, PEAK_MAPS):
        data = np.concatenate(parts[name], axis=0)
        blank = ~np.isfinite(data)
        header = cube.celestial.to_header()
        header["BUNIT"] = units[name]
        header["NBLANK"] = (int(blank.sum()), "pixels without a measurement, set to 0")
        header["ORIGIN"] = "sdpflow"
        fits.PrimaryHDU(np.where(blank, 0.0, data).astype(np.float32), header).writeto(ctx.output(output))
