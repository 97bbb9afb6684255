"""Small inversion (WSClean's default): grid on the smallest image that Nyquist-samples the data.

When the requested pixels oversample the uv coverage, :mod:`sdpflow.radio.imaging` grids on a
coarser grid of a slightly larger (padded) field and resamples in the Fourier domain:

- invert: dirty image on ``small`` (ny, nx) pixels of size ``cell * padded / small``, Fourier
  interpolated (:func:`upsample`) to ``padded`` pixels of the requested size, the centre
  cropped to the requested image;
- predict: the model zero-padded (centred) to ``padded``, low-passed (:func:`downsample`, the
  exact adjoint of :func:`upsample`, flux-conserving) to ``small``.

So invert stays the adjoint of predict to the gridder's epsilon. The resampling keeps
spatial frequencies out to ``passband`` = bandwidth x field (in spectral bins; the bandwidth
is the longest baseline plus what the w term adds, :func:`image_bandwidth`) unchanged and
tapers those between it and the small grid's Nyquist (1 + :data:`MARGIN` times further) to
zero with a raised cosine, so the interpolation kernel decays within a few small pixels.
Interpolation treats the padded field as periodic: the sidelobes that do not vanish at its
edge ring within ~15 small pixels of it (to 1e-5 of the peak), which :data:`GUARD_PIXELS` keeps
outside the image.
Phase centres: pixel (n_y // 2, n_x // 2) of every grid, all sizes even.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ducc0.fft import good_size

from sdpflow.radio.datamodels import SPEED_OF_LIGHT, Visibility

#: The small grid samples the uv plane out to (1 + MARGIN) x the longest baseline.
MARGIN = 0.25
#: Small-grid pixels added on each side of the field: the resampling rings within ~15 of an edge.
GUARD_PIXELS = 20
_MIN_SMALL_PIXELS = 32


@dataclass(frozen=True)
class SmallGrid:
    """Where small inversion grids: padded (y, x) and small (y, x) sizes in pixels, passband (y, x) in bins."""

    padded: tuple[int, int]
    small: tuple[int, int]
    passband: tuple[float, float]

    def pixel_sizes(self, cell_rad: float) -> tuple[float, float]:
        """(x, y) pixel sizes of the small grid in radians, for requested pixels of ``cell_rad``."""
        return (cell_rad * self.padded[1] / self.small[1], cell_rad * self.padded[0] / self.small[0])


def uvw_max_wavelengths(vis: Visibility) -> tuple[float, float]:
    """(longest sqrt(u² + v²), largest |w|) of ``vis`` in wavelengths at its top frequency."""
    if vis.n_rows == 0:
        return 0.0, 0.0
    uvw = np.asarray(vis.uvw, dtype=np.float64)
    scale = float(np.max(vis.frequency)) / SPEED_OF_LIGHT
    return float(np.sqrt(np.max(uvw[:, 0] ** 2 + uvw[:, 1] ** 2))) * scale, float(np.max(np.abs(uvw[:, 2]))) * scale


def image_bandwidth(uv_max: float, w_max: float, npix_x: int, npix_y: int, cell_rad: float) -> float:
    """The highest spatial frequency (wavelengths) of a dirty image over the padded field.

    uv_max, w_max: longest baseline and largest |w| (wavelengths). The w term's phase
    w (n - 1) adds up to w_max |l| / n to the local fringe rate of sqrt(u² + v²).
    """
    guard = GUARD_PIXELS / (2 * (1 + MARGIN) * max(uv_max, 1e-9))  # rad, the small grid's guard band
    half_x, half_y = (npix * cell_rad / 2 + guard for npix in (npix_x, npix_y))
    n_corner = math.sqrt(max(1e-6, 1.0 - half_x**2 - half_y**2))
    return uv_max + w_max * max(half_x, half_y) / n_corner


def vis_bandwidth(vis: Visibility, npix_x: int, npix_y: int, cell_rad: float) -> float:
    """:func:`image_bandwidth` of the baselines in ``vis``."""
    return image_bandwidth(*uvw_max_wavelengths(vis), npix_x, npix_y, cell_rad)


def _even_good_size(n: int) -> int:
    """The smallest even FFT-friendly size >= n."""
    side = good_size(n + n % 2)
    while side % 2:
        side = good_size(side + 1)
    return side


def _sides(npix: int, cell_rad: float, bandwidth: float) -> tuple[int, int, float]:
    """(padded, small, passband) along one axis; bandwidth in wavelengths."""
    small_cell = 1.0 / (2 * (1 + MARGIN) * bandwidth)  # rad, at least this fine
    padded = _even_good_size(npix + 2 * math.ceil(GUARD_PIXELS * small_cell / cell_rad))
    passband = bandwidth * padded * cell_rad  # field (rad) x bandwidth (1/rad): spectral bins
    small = _even_good_size(max(_MIN_SMALL_PIXELS, math.ceil(2 * passband * (1 + MARGIN))))
    return padded, small, passband


def small_grid(npix_x: int, npix_y: int, cell_rad: float, bandwidth: float) -> SmallGrid | None:
    """The small grid for an image of npix_x x npix_y pixels of cell_rad radians whose spatial
    frequencies reach ``bandwidth`` wavelengths (:func:`image_bandwidth`); None when it would not
    be smaller than the requested image on both axes."""
    pad_y, small_y, pass_y = _sides(npix_y, cell_rad, bandwidth)
    pad_x, small_x, pass_x = _sides(npix_x, cell_rad, bandwidth)
    if small_x >= npix_x or small_y >= npix_y:
        return None
    return SmallGrid((pad_y, pad_x), (small_y, small_x), (pass_y, pass_x))


def _centred_spectrum(image: np.ndarray) -> np.ndarray:
    """rfft2 of a [y, x] image whose origin is pixel (ny // 2, nx // 2)."""
    return np.fft.rfft2(np.fft.ifftshift(image))


def _from_spectrum(spectrum: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.fft.fftshift(np.fft.irfft2(spectrum, s=shape))


def _taper(n: int, passband: float, full: bool) -> np.ndarray:
    """Spectral weights along one axis of an n-pixel grid (full or rfft half axis): 1 out to
    ``passband`` bins, a raised cosine to 0 at Nyquist."""
    k = np.abs(np.fft.fftfreq(n, 1.0 / n)) if full else np.arange(n // 2 + 1, dtype=float)
    passband = min(passband, n // 2 - 1.0)
    ramp = np.clip((k - passband) / (n // 2 - passband), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * ramp))


def _spectral_taper(shape: tuple[int, int], passband: tuple[float, float]) -> np.ndarray:
    """[y, x // 2 + 1] weights of an rfft2 spectrum of ``shape``; passband (y, x) in bins."""
    return np.outer(_taper(shape[0], passband[0], True), _taper(shape[1], passband[1], False))


def upsample(small: np.ndarray, shape: tuple[int, int], passband: tuple[float, float]) -> np.ndarray:
    """Fourier-interpolate a [y, x] image onto a finer grid of ``shape`` over the same field.

    Values are kept where the image holds only the passband; the spectrum is tapered beyond
    it (see the module) and zero-padded, centred. Both shapes even.
    """
    (ny, nx), (big_y, big_x) = small.shape, shape
    spectrum = _centred_spectrum(small) * _spectral_taper(small.shape, passband)
    padded = np.zeros((big_y, big_x // 2 + 1), spectrum.dtype)
    padded[: ny // 2, : nx // 2] = spectrum[: ny // 2, : nx // 2]
    padded[big_y - ny // 2:, : nx // 2] = spectrum[ny // 2:, : nx // 2]
    return _from_spectrum(padded, shape) * (big_y * big_x / (ny * nx))


def downsample(image: np.ndarray, shape: tuple[int, int], passband: tuple[float, float]) -> np.ndarray:
    """The adjoint of :func:`upsample`: low-pass a [y, x] image onto a coarser grid of ``shape``.

    Keeps the passband's spatial frequencies and the total (a Jy/pixel model keeps its flux).
    """
    big_y, (ny, nx) = image.shape[0], shape
    spectrum = _centred_spectrum(image)
    cropped = np.zeros((ny, nx // 2 + 1), spectrum.dtype)
    cropped[: ny // 2, : nx // 2] = spectrum[: ny // 2, : nx // 2]
    cropped[ny // 2:, : nx // 2] = spectrum[big_y - ny // 2:, : nx // 2]
    return _from_spectrum(cropped * _spectral_taper(shape, passband), shape)


def crop_centre(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centred ``shape`` part of a [y, x] image (both even: centre pixel stays the centre)."""
    y0, x0 = (image.shape[0] - shape[0]) // 2, (image.shape[1] - shape[1]) // 2
    return image[y0: y0 + shape[0], x0: x0 + shape[1]]


def pad_centre(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`crop_centre`: ``image`` in the middle of zeros of ``shape``."""
    out = np.zeros(shape, image.dtype)
    y0, x0 = (shape[0] - image.shape[0]) // 2, (shape[1] - image.shape[1]) // 2
    out[y0: y0 + image.shape[0], x0: x0 + image.shape[1]] = image
    return out


def to_requested(dirty: np.ndarray, grid: SmallGrid, shape: tuple[int, int]) -> np.ndarray:
    """A [y, x] dirty image on the small grid, interpolated and cropped to the requested ``shape``."""
    return crop_centre(upsample(dirty, grid.padded, grid.passband), shape)


def to_small(model: np.ndarray, grid: SmallGrid) -> np.ndarray:
    """A [y, x] model on the requested grid, low-passed onto the small grid (adjoint of :func:`to_requested`)."""
    return downsample(pad_centre(model, grid.padded), grid.small, grid.passband)
