"""The restoring beam (a Gaussian fitted to the PSF main lobe) and restored images."""

from __future__ import annotations

import numpy as np

from sdpflow.errors import DataError

_FWHM_PER_SIGMA = np.sqrt(8.0 * np.log(2.0))


def gaussian_beam_image(shape: tuple[int, int], beam: tuple[float, float, float], cell_rad: float,
                        centre: tuple[float, float] | None = None) -> np.ndarray:
    """An elliptical Gaussian of peak 1 on a [y, x] grid, centred on ``centre`` (default: the image centre).

    beam: (bmaj, bmin, bpa) radians: FWHM of the axes and the major axis's position angle,
    east of north. x runs west (RA decreasing) and y north, as in every image here.
    """
    bmaj, bmin, bpa = beam
    cy, cx = centre if centre is not None else (shape[0] // 2, shape[1] // 2)
    y, x = np.mgrid[:shape[0], :shape[1]]
    east, north = -(x - cx) * cell_rad, (y - cy) * cell_rad
    return _gaussian(east, north, bmaj / _FWHM_PER_SIGMA, bmin / _FWHM_PER_SIGMA, bpa)


def _gaussian(east: np.ndarray, north: np.ndarray, sigma_major: float, sigma_minor: float, angle: float) -> np.ndarray:
    """Peak-1 elliptical Gaussian at offsets east, north (radians); the major axis at ``angle`` east of north."""
    along = east * np.sin(angle) + north * np.cos(angle)
    across = east * np.cos(angle) - north * np.sin(angle)
    return np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))


def fit_restoring_beam(psf: np.ndarray, cell_rad: float, *, beam_estimate_rad: float | None = None,
                       box_scale: float = 10.0, lobe_level: float = 0.35) -> tuple[float, float, float]:
    """Fit an elliptical Gaussian to the PSF as WSClean fits its restoring beam: (bmaj, bmin, bpa) in radians.

    psf: [y, x] (or [chan, y, x]: the first channel is fitted), peak 1 at its centre pixel
    (y, x) = (ny // 2, nx // 2). As WSClean: a peak-1 Gaussian centred there is fitted by least
    squares to the pixels of a centred square box, sidelobes included, of ``box_scale`` times
    the beam estimate (at least ``box_scale`` pixels, even), grown (up to 5 fits) while the fitted
    major axis times 0.8 ``box_scale`` does not fit in the box; of the box, only the quadrant
    x >= nx // 2, y >= ny // 2 shapes WSClean's fit (see :func:`_fit_in_box`), so only it is used. beam_estimate_rad: WSClean's
    theoretical beam, 1 / the longest baseline in wavelengths (radians); None: the FWHM of the
    main lobe's second moments. bmaj, bmin are FWHM; bpa is the major axis's position angle
    east of north, in [0, pi). DataError when the main lobe (pixels connected to the peak above
    ``lobe_level``) has fewer than 3 pixels: the pixels are too large for the resolution.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 3:
        psf = psf[0]
    height, width = psf.shape
    cy, cx = height // 2, width // 2
    psf = psf / psf[cy, cx]
    ys, xs = np.nonzero(_connected_region(psf > lobe_level, cy, cx))
    if len(ys) < 3:
        raise DataError(f"the PSF's main lobe covers {len(ys)} pixel(s) above {lobe_level:g} of its peak: too few to "
                        "fit a restoring beam; the pixels are too large for the resolution: choose a smaller --scale")
    start = _moment_start(xs - cx, ys - cy, psf[ys, xs])  # pixels and radians of angle
    estimate = beam_estimate_rad / cell_rad if beam_estimate_rad else start[0] * _FWHM_PER_SIGMA
    preferred = _even(max(np.ceil(box_scale), np.ceil(estimate * box_scale)))
    for _ in range(5):
        box_w, box_h = min(preferred, width), min(preferred, height)
        params = _fit_in_box(psf, box_w, box_h, start)
        major = max(abs(params[0]), abs(params[1])) * _FWHM_PER_SIGMA
        fits_w = major * box_scale * 0.8 < box_w or box_w >= width
        fits_h = major * box_scale * 0.8 < box_h or box_h >= height
        if fits_w and fits_h:
            break
        preferred = _even(max(np.ceil(box_scale), np.ceil(major * box_scale)))
    sigma_a, sigma_b, angle = abs(params[0]) * cell_rad, abs(params[1]) * cell_rad, params[2]
    if sigma_b > sigma_a:
        sigma_a, sigma_b, angle = sigma_b, sigma_a, angle + np.pi / 2
    return float(sigma_a * _FWHM_PER_SIGMA), float(sigma_b * _FWHM_PER_SIGMA), float(np.mod(angle, np.pi))


def _even(size: float) -> int:
    """``size`` as an int, rounded up to even."""
    size = int(size)
    return size + size % 2


def _moment_start(dx: np.ndarray, dy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(sigma_major, sigma_minor in pixels, angle east of north) from the second moments of a lobe's pixels."""
    east, north = -dx.astype(np.float64), dy.astype(np.float64)
    cov = np.cov(np.vstack([east, north]), aweights=values / values.sum()) + np.eye(2) / 12
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    major = eigenvectors[:, 1]
    return np.array([np.sqrt(eigenvalues[1]) * 1.5, np.sqrt(eigenvalues[0]) * 1.5, np.arctan2(major[0], major[1])])


def _fit_in_box(psf: np.ndarray, box_w: int, box_h: int, start: np.ndarray) -> np.ndarray:
    """Least-squares (sigma_a, sigma_b in pixels, angle) of a peak-1 Gaussian at the centre of ``psf`` to every
    pixel of the centred box_h x box_w box (WSClean's box: rows and columns (n - box) // 2 .. (n + box) // 2)."""
    height, width = psf.shape
    y0, x0 = (height - box_h) // 2, (width - box_w) // 2
    box = psf[y0:(height + box_h) // 2, x0:(width + box_w) // 2]
    y, x = np.mgrid[y0:y0 + box.shape[0], x0:x0 + box.shape[1]]
    # WSClean 3.1's fitter computes the offsets in unsigned integers: for pixels left of or below the
    # centre they wrap to ~1e19 and its model is 0 there, so only this quadrant shapes the fit
    quadrant = (y >= height // 2) & (x >= width // 2)
    east = -(x - width // 2)[quadrant].astype(np.float64)
    north = (y - height // 2)[quadrant].astype(np.float64)
    values = box[quadrant]

    def misfit(params: np.ndarray) -> np.ndarray:
        return _gaussian(east, north, *params) - values

    return _levenberg_marquardt(misfit, start)


def _connected_region(mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The pixels of ``mask`` connected to (y, x) through edge-sharing neighbours."""
    region = np.zeros_like(mask)
    region[y, x] = mask[y, x]
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if np.array_equal(grown, region):
            return region
        region = grown


def _levenberg_marquardt(misfit, params: np.ndarray, *, iterations: int = 100, tolerance: float = 1e-12) -> np.ndarray:
    """Least-squares minimum of ``sum(misfit(params)**2)`` for a few well-scaled parameters."""
    damping = 1e-3
    residual = misfit(params)
    cost = residual @ residual
    for _ in range(iterations):
        step_size = 1e-7 * np.maximum(np.abs(params), 1.0)
        jacobian = np.stack([(misfit(params + step) - misfit(params - step)) / (2 * h)
                             for step, h in zip(np.diag(step_size), step_size)], axis=1)
        normal, gradient = jacobian.T @ jacobian, jacobian.T @ residual
        while True:
            try:
                step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), -gradient)
            except np.linalg.LinAlgError:  # a parameter the misfit does not depend on (a lobe a pixel wide)
                return params
            trial = params + step
            trial_residual = misfit(trial)
            trial_cost = trial_residual @ trial_residual
            if trial_cost <= cost:
                damping = max(damping / 10, 1e-12)
                break
            damping *= 10
            if damping > 1e12:
                return params
        improvement = cost - trial_cost
        params, residual, cost = trial, trial_residual, trial_cost
        if improvement <= tolerance * max(cost, 1e-300) or np.all(np.abs(step) <= 1e-12 * np.maximum(np.abs(params), 1)):
            return params
    return params


def restore(model: np.ndarray, residual: np.ndarray, beam: tuple[float, float, float], cell_rad: float) -> np.ndarray:
    """Restored image (Jy/beam): model (Jy/pixel) convolved with the peak-1 Gaussian beam, plus residual.

    model, residual: [y, x] or [chan, y, x]; beam: (bmaj, bmin, bpa) radians.
    """
    model = np.asarray(model, dtype=np.float64)
    residual = np.asarray(residual, dtype=np.float64)
    planes = model if model.ndim == 3 else model[None]
    bmaj = beam[0]
    half = int(np.ceil(3.0 * bmaj / cell_rad)) + 1
    kernel = gaussian_beam_image((2 * half + 1, 2 * half + 1), beam, cell_rad)
    restored = np.array([_convolve_same(plane, kernel) if plane.any() else plane for plane in planes])
    return (restored if model.ndim == 3 else restored[0]) + residual


def _convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution of an image [y, x] with an odd-sized kernel, cropped to the image (numpy FFT).

    As ``scipy.signal.fftconvolve(image, kernel, mode="same")``, without importing scipy.signal
    (about a second on a worker's first restore).
    """
    shape = (image.shape[0] + kernel.shape[0] - 1, image.shape[1] + kernel.shape[1] - 1)
    full = np.fft.irfft2(np.fft.rfft2(image, shape) * np.fft.rfft2(kernel, shape), shape)
    y0, x0 = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
    return full[y0:y0 + image.shape[0], x0:x0 + image.shape[1]]
