"""The polarimetry section of the report: RM against the truth (simulations), the fractional
polarisation histogram, the RM sky map, and the spectra and Faraday spectra of the brightest sources.

Everything is read from the run folder (``catalogue.fits``, ``summary.json``, ``truth_match.csv``,
``spectra/``). The Faraday spectra shown are recomputed from the stored spectra on the default
grid (RM-Tools' rules, 10 samples per FWHM) with RM-CLEAN to 3σ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from sdpflow.report.html import FigureSpec, ReportSection, run_section, write_report

#: Brightest polarised components whose spectra and FDFs are drawn.
BRIGHTEST = 3


def polarimetry_section(run_dir: str | Path) -> ReportSection:
    """The section of a polarimetry run, from its summary and catalogue."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [("islands", f"{summary['islands']} ({summary['islands_failed']} failed)"),
            ("components measured", f"{summary['components_measured']} of {summary['components']}"),
            (f"polarised S/N ≥ {summary['snr_threshold']:g}", str(summary["polarised_above_snr_threshold"])),
            ("RMSF FWHM", f"{summary['rmsf_fwhm_radm2']:.2f} rad/m²" if summary.get("rmsf_fwhm_radm2") else "-")]
    truth = summary.get("truth") or {}
    if truth.get("compared"):
        rows += [("compared with the truth (S/N > 10)", str(truth["compared"])),
                 ("|RM − RM_true| < 3 rm_err", f"{100 * truth['within_3_sigma']:.1f}%"),
                 ("median |ΔRM|", f"{truth['median_abs_delta_rm_radm2']:.3f} rad/m² "
                                  f"({truth['median_abs_delta_rm_fwhm']:.4f} FWHM)")]
    figures: list[FigureSpec] = []
    if (run_dir / "truth_match.csv").exists():
        figures.append(("rm_truth", "", "RM against the truth"))
    figures += [("fracpol", "", "fractional polarisation"), ("rm_sky", "", "RM sky map")]
    if (run_dir / "peak_pi.fits").exists():
        figures.append(("peak_maps", "", "rmsynth3d: peak polarised intensity and its Faraday depth"))
    figures += [("spectra", cat_id, f"spectra and Faraday spectrum of {cat_id}") for cat_id in _brightest(run_dir)]
    return ReportSection("Polarimetry", rows, figures=figures, render=render_polarimetry_figure,
                         links=[("catalogue.fits", "catalogue.fits"), ("catalogue.vot", "catalogue.vot")])


def write_polarimetry_report(run_dir: str | Path, path: str | Path, map_function: Callable = map,
                             final_path: str | Path | None = None) -> None:
    """``report.html`` of a polarimetry run: its section and its stages (figures drawn by ``map_function``;
    ``final_path``: where the page will be moved)."""
    write_report(run_dir, path, [polarimetry_section(run_dir), run_section(run_dir)],
                 title=f"sdpflow polarimetry {Path(run_dir).resolve().name}", map_function=map_function,
                 final_path=final_path)


def _catalogue(run_dir: Path):
    from astropy.table import Table

    return Table.read(run_dir / "catalogue.fits")


def _brightest(run_dir: Path) -> list[str]:
    table = _catalogue(run_dir)
    polint = np.nan_to_num(np.asarray(table["polint"], dtype=float), nan=-np.inf)
    return [str(table["cat_id"][i]) for i in np.argsort(-polint)[:BRIGHTEST] if np.isfinite(polint[i])]


def render_polarimetry_figure(run_dir: str, spec: FigureSpec) -> bytes | None:
    """One figure of :func:`polarimetry_section` as PNG bytes."""
    from sdpflow.report.plots import _png, plt

    folder = Path(run_dir)
    kind, argument, _ = spec
    table = _catalogue(folder)
    good = ~np.asarray(table["snr_flag"], dtype=bool)
    if kind == "rm_truth":
        import csv

        with open(folder / "truth_match.csv", newline="") as stream:
            rows = [row for row in csv.DictReader(stream) if float(row["snr_polint"]) > 10]
        if not rows:
            return None
        truth = np.array([float(r["truth_rm"]) for r in rows])
        rm = np.array([float(r["rm"]) for r in rows])
        err = np.array([float(r["rm_err"]) for r in rows])
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, height_ratios=(2, 1))
        top.errorbar(truth, rm, yerr=err, fmt=".", ms=4)
        top.plot([truth.min(), truth.max()], [truth.min(), truth.max()], "k-", lw=0.5)
        top.set_ylabel("RM measured (rad/m²)")
        bottom.errorbar(truth, (rm - truth) / err, fmt=".", ms=4)
        bottom.axhline(3, color="r", lw=0.5)
        bottom.axhline(-3, color="r", lw=0.5)
        bottom.set_xlabel("RM true (rad/m²)")
        bottom.set_ylabel("ΔRM / rm_err")
        return _png(figure)
    if kind == "fracpol":
        values = np.asarray(table["fracpol"], dtype=float)[good]
        values = values[np.isfinite(values)]
        if not values.size:
            return None
        figure, axes = plt.subplots(figsize=(5, 3.5))
        axes.hist(100 * values, bins=min(40, max(5, values.size // 3)))
        axes.set_xlabel("fractional polarisation (%), above the S/N threshold")
        axes.set_ylabel("components")
        return _png(figure)
    if kind == "rm_sky":
        if not good.any():
            return None
        rm = np.asarray(table["rm"], dtype=float)[good]
        polint = np.asarray(table["polint"], dtype=float)[good]
        figure, axes = plt.subplots(figsize=(5.5, 4.5))
        limit = float(np.nanmax(np.abs(rm))) or 1.0
        shown = axes.scatter(np.asarray(table["ra"])[good], np.asarray(table["dec"])[good], c=rm, cmap="RdBu_r",
                             vmin=-limit, vmax=limit, s=20 + 200 * polint / np.nanmax(polint), edgecolors="k",
                             linewidths=0.3)
        axes.invert_xaxis()
        axes.set_xlabel("RA (deg)")
        axes.set_ylabel("Dec (deg)")
        figure.colorbar(shown, ax=axes, label="RM (rad/m²)")
        return _png(figure)
    if kind == "spectra":
        return _spectra_png(folder, table, argument)
    if kind == "peak_maps":
        from astropy.io import fits

        peak_pi = fits.getdata(folder / "peak_pi.fits")
        peak_rm = fits.getdata(folder / "peak_rm.fits")
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
        shown = left.imshow(peak_pi, origin="lower", cmap="viridis")
        figure.colorbar(shown, ax=left, label="peak PI (Jy/beam)")
        bright = peak_pi > 5 * np.median(peak_pi)
        limit = float(np.nanmax(np.abs(peak_rm[bright]))) if bright.any() else 1.0
        shown = right.imshow(np.where(bright, peak_rm, np.nan), origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
        figure.colorbar(shown, ax=right, label="RM at the peak (rad/m²), where PI > 5 × its median")
        for axes in (left, right):
            axes.set_xlabel("x (pixels)")
            axes.set_ylabel("y (pixels)")
        return _png(figure)
    raise ValueError(f"unknown report figure kind {kind!r}")


def _spectra_png(folder: Path, table, cat_id: str) -> bytes | None:
    from sdpflow.pipelines.polarimetry.flow import island_stem
    from sdpflow.pipelines.polarimetry.tasks import spectra_path
    from sdpflow.polarimetry.rmclean import rm_clean
    from sdpflow.polarimetry.rmsynth import faraday_grid, lambda2_from_frequency, rm_synthesis, rmsf
    from sdpflow.polarimetry.stokesi import fit_stokes_i
    from sdpflow.report.plots import _png, plt

    index = list(table["cat_id"]).index(cat_id)
    path = folder / spectra_path(island_stem(str(table["source_id"][index])))
    if not path.exists():
        return None
    with np.load(path) as stored:
        row = list(stored["component_id"]).index(cat_id)
        frequency, values, noise = stored["frequency_hz"], stored["values"][row], stored["noise"][row]
    model = fit_stokes_i(frequency_hz=frequency, stokes_i=values[None, 0], stokes_i_err=noise[None, 0])
    i_model = model.evaluate(frequency)
    grid = faraday_grid(frequency_hz=frequency)
    synth = rm_synthesis(stokes_q=values[None, 1], stokes_u=values[None, 2], stokes_q_err=noise[None, 1],
                         stokes_u_err=noise[None, 2], stokes_i_model=i_model, i_model_at=model.at, grid=grid,
                         dtype=np.complex128)
    clean = rm_clean(fdf=synth.fdf, rmsf=rmsf(weights=synth.weights, lambda0_sq_m2=synth.lambda0_sq_m2, grid=grid,
                                              dtype=np.complex128),
                     phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm, cutoff=3 * synth.fdf_noise, parallel=False)
    lam2 = lambda2_from_frequency(frequency_hz=frequency)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(frequency / 1e6, values[0], ".", ms=3, label="I")
    left.plot(frequency / 1e6, i_model[0], "k-", lw=1, label=f"I model (order {int(model.order[0])})")
    left.plot(frequency / 1e6, values[1], ".", ms=3, label="Q")
    left.plot(frequency / 1e6, values[2], ".", ms=3, label="U")
    left.set_xlabel("frequency (MHz)")
    left.set_ylabel("Jy/beam")
    left.legend(fontsize=7)
    left.set_title(f"{cat_id}: λ² {lam2.min():.3f}-{lam2.max():.3f} m²", fontsize=9)
    right.plot(grid.phi_radm2, np.abs(synth.fdf[0]), lw=0.8, label="dirty |FDF|")
    right.plot(grid.phi_radm2, np.abs(clean.clean_fdf[0]), lw=1, label="clean |FDF|")
    peak = float(np.abs(synth.fdf[0]).max())
    right.plot(grid.phi2_radm2, peak * np.abs(rmsf(weights=synth.weights, lambda0_sq_m2=synth.lambda0_sq_m2,
                                                   grid=grid, dtype=np.complex128)[0]), lw=0.5, color="grey",
               label="RMSF (scaled)")
    components = np.abs(clean.components[0])
    right.vlines(grid.phi_radm2[components > 0], 0, components[components > 0], color="k", lw=1,
                 label="clean components")
    right.set_xlim(grid.phi_radm2[0], grid.phi_radm2[-1])
    right.set_xlabel("Faraday depth (rad/m²)")
    right.set_ylabel("Jy/beam/RMSF")
    right.legend(fontsize=7)
    return _png(figure)
