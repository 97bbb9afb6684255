"""Sky images, residual histograms and uv coverage for the run report (matplotlib, astropy).

Images are drawn on WCSAxes from the FITS header's own WCS (RA/Dec ticks, the phase centre
marked, the restoring beam from BMAJ/BMIN/BPA); the stretch is ``astropy.visualization``'s.
Every function returns a matplotlib Figure; :func:`sdpflow.report.plots.save` writes it.
"""

from __future__ import annotations

import numpy as np

from sdpflow.report.plots import plt

#: Inches of the image axes: with ``dpi`` below, about one screen pixel per image pixel up to 1024².
IMAGE_INCHES = 6.0


def image_figure(data: np.ndarray, header, *, kind: str, title: str, sigma: float | None = None,
                 zoom_pixels: int | None = None):
    """A sky image [y, x] with RA/Dec axes from ``header`` (a FITS header with a celestial WCS).

    kind: "image" (an arcsinh stretch from −5σ to the peak, σ the MAD noise in Jy/beam),
    "residual" (linear, symmetric about zero within ±5σ) or "psf" (linear from its minimum
    to its peak, in units of the peak, so the main lobe is not saturated). The beam ellipse
    (BMAJ, BMIN, BPA in degrees) is drawn when the header has one; its artist's gid is "beam".
    zoom_pixels: show only the central 2 × zoom_pixels square (the WCS sliced with it).
    """
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch
    from astropy.wcs import WCS

    wcs = WCS(header).celestial
    if zoom_pixels and 2 * zoom_pixels < min(data.shape):
        cy, cx = data.shape[0] // 2, data.shape[1] // 2
        window = (slice(cy - zoom_pixels, cy + zoom_pixels), slice(cx - zoom_pixels, cx + zoom_pixels))
        data, wcs = data[window], wcs[window]
    sigma = sigma if sigma and np.isfinite(sigma) and sigma > 0 else _mad_sigma(data)
    finite = data[np.isfinite(data)]
    peak = float(finite.max()) if finite.size else 1.0
    if kind == "psf":
        norm, label = ImageNormalize(vmin=float(finite.min()), vmax=peak, stretch=LinearStretch()), "response (peak = 1)"
        cmap = "viridis"
    elif kind == "residual":
        norm, label, cmap = ImageNormalize(vmin=-5 * sigma, vmax=5 * sigma, stretch=LinearStretch()), "Jy/beam", "RdBu_r"
    else:
        top = max(peak, 10 * sigma)
        # the linear part of the arcsinh lies within about 3σ of zero
        norm = ImageNormalize(vmin=-5 * sigma, vmax=top, stretch=AsinhStretch(a=min(1.0, 8 * sigma / (top + 5 * sigma))))
        label, cmap = "Jy/beam", "inferno"
    npix = max(data.shape)
    figure = plt.figure(figsize=(IMAGE_INCHES + 1.8, IMAGE_INCHES * data.shape[0] / data.shape[1] + 0.9))
    axes = figure.add_axes((0.12, 0.1, 0.7, 0.8), projection=wcs)
    shown = axes.imshow(data, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
    figure.colorbar(shown, ax=axes, label=label, fraction=0.046, pad=0.02)
    _sky_axes(axes)
    centre = wcs.wcs.crval
    axes.plot(centre[0], centre[1], marker="+", color="cyan", markersize=14, mew=1.5,
              transform=axes.get_transform("world"), gid="phase-centre")
    if all(key in header for key in ("BMAJ", "BMIN", "BPA")) and header["BMAJ"] > 0:
        _beam_ellipse(axes, header)
    axes.set_title(title, fontsize=10)
    figure.dpi_for_full_resolution = max(100.0, npix / (IMAGE_INCHES * 0.75))
    return figure


def _sky_axes(axes) -> None:
    ra, dec = axes.coords[0], axes.coords[1]
    ra.set_axislabel("Right Ascension (J2000)")
    dec.set_axislabel("Declination (J2000)")
    ra.set_major_formatter("hh:mm:ss")
    dec.set_major_formatter("dd:mm")
    # plain-text separators: the default superscript h/m/s go through mathtext, a third of the drawing time
    ra.set_separator(("h", "m", "s"))
    ra.set_ticks(number=5)
    dec.set_ticks(number=6)
    ra.set_ticklabel(exclude_overlapping=True, size=8)
    dec.set_ticklabel(exclude_overlapping=True, size=8)
    axes.coords.grid(color="white", alpha=0.25, linestyle=":")


def _beam_ellipse(axes, header) -> None:
    """The restoring beam in the lower left corner (astropy's ``add_beam``), gid "beam"."""
    from astropy.visualization.wcsaxes import add_beam

    add_beam(axes, header=header, corner="bottom left", frame=False, facecolor="none", edgecolor="white",
             hatch="////", lw=1.2, gid="beam")


def _mad_sigma(data: np.ndarray) -> float:
    from sdpflow.radio.deconvolution import mad_sigma

    finite = data[np.isfinite(data)]
    return float(mad_sigma(finite)) or 1e-6 if finite.size else 1e-6


def histogram_figure(residual: np.ndarray, sigma: float):
    """Histogram of residual pixels (Jy/beam) with the Gaussian of the MAD σ over it (log counts)."""
    values = residual[np.isfinite(residual)].ravel()
    figure, axes = plt.subplots(figsize=(5.2, 3.4))
    edges = np.linspace(-8 * sigma, 8 * sigma, 121)
    counts, _, _ = axes.hist(values, bins=edges, color="tab:blue", alpha=0.7, label="residual pixels")
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = values.size * (edges[1] - edges[0]) * np.exp(-0.5 * (centres / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    axes.plot(centres, expected, color="black", lw=1.2, label=f"Gaussian, σ = {sigma * 1e3:.3g} mJy/beam (MAD)")
    axes.set_yscale("log")
    axes.set_ylim(0.5, max(counts.max(), expected.max()) * 2)
    axes.set_xlabel("residual (Jy/beam)")
    axes.set_ylabel("pixels")
    axes.legend(fontsize=7)
    return figure


def uv_coverage_figure(u_m: np.ndarray, v_m: np.ndarray, frequency_hz: float):
    """uv coverage: each sampled baseline and its mirror, in kilowavelengths at ``frequency_hz``."""
    from sdpflow.radio.datamodels import SPEED_OF_LIGHT

    scale = frequency_hz / SPEED_OF_LIGHT / 1e3
    figure, axes = plt.subplots(figsize=(4.6, 4.6))
    for sign in (1, -1):
        axes.plot(sign * u_m * scale, sign * v_m * scale, ",", color="tab:blue", alpha=0.5, rasterized=True)
    axes.set_aspect("equal")
    axes.set_xlabel("u (kλ)")
    axes.set_ylabel("v (kλ)")
    axes.set_title(f"uv coverage at {frequency_hz / 1e6:.1f} MHz", fontsize=10)
    return figure
