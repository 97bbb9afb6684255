"""The imaging section's figures, drawn from the run's files (on a worker or on the client)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdpflow.pipelines.imaging.summary import read_summary
from sdpflow.report.html import FigureSpec


def render_imaging_figure(run_dir: str, spec: FigureSpec):
    """One figure of :func:`sdpflow.pipelines.imaging.report.imaging_section` (a matplotlib Figure)."""
    from astropy.io import fits as astropy_fits

    from sdpflow.report import gain_plots, plots, sky_plots  # matplotlib: only where figures are drawn

    folder = Path(run_dir)
    kind, argument, title = spec
    if kind in ("image", "residual", "psf"):
        with astropy_fits.open(folder / argument) as hdus:
            header, data = hdus[0].header, np.asarray(hdus[0].data, dtype=np.float32)
        plane = np.nanmean(data[0], axis=0) if data.ndim == 4 else data  # [stokes, freq, y, x]: Stokes I, all channels
        summary = read_summary(folder)
        noise = summary.noise_jy_per_beam if kind != "psf" else None
        # the PSF's centre: 12 beam widths across, where its main lobe and first sidelobes are seen
        zoom = int(6 * summary.restoring_beam.bmaj_arcsec / summary.image.cell_arcsec) if kind == "psf" else None
        figure = sky_plots.image_figure(plane, header, kind=kind, title=_image_title(title, header), sigma=noise,
                                        zoom_pixels=zoom)
        return plots.save(figure, svg=kind == "image")  # one SVG thumbnail: each costs a third of the drawing
    if kind == "histogram":
        from sdpflow.radio import fits

        residual = fits.read_fits_image(folder / argument).data[:, 0].mean(axis=0)
        return sky_plots.histogram_figure(residual, read_summary(folder).noise_jy_per_beam or float(np.std(residual)))
    if kind == "uv":
        from sdpflow.radio.ms import read_ms_metadata
        from sdpflow.radio.ms_summary import uvw_sample

        ms = read_summary(folder).ms
        uvw = uvw_sample(ms)
        return sky_plots.uv_coverage_figure(uvw[:, 0], uvw[:, 1], float(np.mean(read_ms_metadata(ms).frequency)))
    if kind == "cycles":
        return plots.cycles_figure([cycle.model_dump() for cycle in read_summary(folder).cycles])
    if kind == "gain-panels":
        from sdpflow.radio import hdf5
        from sdpflow.radio.ms import read_ms_metadata

        quantity, _, bandpass = argument.partition(":")  # "phase", "amplitude:B"...
        tables = {name: table for name, table in hdf5.read_gaintables_hdf5(folder / "gains.h5").items()
                  if (table.mode == "B") == bool(bandpass)}
        names = read_ms_metadata(read_summary(folder).ms).antenna_names
        return plots.save(gain_plots.gain_panels_figure(tables, names, quantity=quantity), tight=False)
    raise ValueError(f"unknown imaging figure kind {kind!r}")


def _image_title(title: str, header) -> str:
    """``restored, 102.500 MHz, bandwidth 6.000 MHz`` from the FITS header's frequency axis."""
    for axis in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{axis}", "")).startswith("FREQ"):
            bandwidth = abs(float(header[f"CDELT{axis}"])) * int(header[f"NAXIS{axis}"])
            return f"{title}, {float(header[f'CRVAL{axis}']) / 1e6:.3f} MHz, bandwidth {bandwidth / 1e6:.3f} MHz"
    return title
