"""Invert (visibilities to dirty image and PSF) and predict (model image to visibilities) with ducc0.

Images here are Stokes I arrays ``[chan_out, y, x]`` in the orientation of
:mod:`sdpflow.radio.datamodels` (RA decreasing with x, Dec increasing with y, phase centre at
pixel (npix_y // 2, npix_x // 2)). The transforms are exact to ``epsilon`` against

    predict:  V(u, v, w) = sum_pixels I(l, m) * exp(+2j*pi*(u*l + v*m + w*(n - 1)))
    invert:   D(l, m)    = sum_samples weight * V * exp(-2j*pi*(u*l + v*m + w*(n - 1)))

(u, v, w in wavelengths), so invert is the adjoint of predict. A model image is in Jy per
pixel; invert returns the unnormalised sum and the sum of weights so chunks can be added
before dividing (:meth:`ImageSum.normalised` gives Jy/beam).

``small_inversion`` (WSClean's default; ``-no-small-inversion`` turns it off): when the pixels
oversample the uv coverage, grid on the smallest image that Nyquist-samples the image's
``bandwidth`` (the longest baseline plus the w term's share, in wavelengths) and resample in
the Fourier domain (:mod:`sdpflow.radio.small_inversion`). invert stays the adjoint of
predict to ``epsilon``; against the plain path images differ by ~1e-5 of the peak and
predicted visibilities by ~1e-4 at most (the tests bound both). ducc0 then grids with a
smaller kernel (it oversamples a small grid more): 20-25% less CPU per call in the Imaging
benchmark (bench/README.md). All chunks of an observation must pass the same ``bandwidth``
(the observation's, :func:`sdpflow.radio.small_inversion.image_bandwidth`) so that partial
images are sums on one grid.

``padding`` (WSClean's -padding): grid on an image ``padding`` times larger on a side (rounded up to
even) and keep its centre. WSClean pads by 1.2 by default to keep sources outside the field from
aliasing in; ducc0's kernel already holds that aliasing below ``epsilon`` (its own grid is oversampled
by 1.1-2.6), so the default here is 1.0: with 1.2 the images differ by less than ``epsilon`` of the peak
(tests/radio/test_padding.py) for 1.44 times the pixels.

``precision``: "double" grids complex128 visibilities with float64 weights; "single" grids
complex64 / float32 (as an MS stores them), ~30% faster and exact to ~1e-7 of the peak beyond
``epsilon``. float32 cannot deliver an epsilon below :data:`SINGLE_MIN_EPSILON`, so smaller
epsilons grid in double whatever ``precision`` says. Partial images are summed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ducc0.wgridder.experimental import dirty2vis, vis2dirty

from sdpflow.radio.datamodels import Visibility, single_plane, unflagged_weights
from sdpflow.radio.small_inversion import SmallGrid, small_grid, to_requested, to_small, vis_bandwidth
from sdpflow.radio.weighting import output_channel_index

SINGLE_MIN_EPSILON = 1e-5


def gridding_dtypes(precision: str, epsilon: float) -> tuple[type, type]:
    """(visibility, weight) dtypes the gridder works in for a precision and epsilon (see the module)."""
    if precision not in ("single", "double"):
        raise ValueError(f"precision {precision!r}: use single or double")
    if precision == "single" and epsilon >= SINGLE_MIN_EPSILON:
        return np.complex64, np.float32
    return np.complex128, np.float64


@dataclass
class ImageSum:
    """An unnormalised image and its sum of weights; add chunks with ``+``, then normalise.

    image: float64 [chan_out, y, x], sum of weight * V * phase; weight_sum: float64 [chan_out].
    """

    image: np.ndarray
    weight_sum: np.ndarray

    def __add__(self, other: "ImageSum") -> "ImageSum":
        return ImageSum(self.image + other.image, self.weight_sum + other.weight_sum)

    def normalised(self) -> np.ndarray:
        """The image divided by its sum of weights, [chan_out, y, x] (Jy/beam; a PSF peaks at 1)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(self.weight_sum > 0, 1.0 / self.weight_sum, 0.0)
        return self.image * scale[:, None, None]


def padded_size(npix: int, padding: float) -> int:
    """A side of ``npix`` pixels padded by ``padding`` (>= 1), rounded up to an even number, as WSClean pads."""
    side = int(np.ceil(npix * padding - 1e-9))
    return side + side % 2


def _crop(plane: np.ndarray, npix_y: int, npix_x: int) -> np.ndarray:
    """The centre [npix_y, npix_x] of a padded [y, x] plane (centre pixels stay at index n // 2)."""
    y0, x0 = (plane.shape[0] - npix_y) // 2, (plane.shape[1] - npix_x) // 2
    return plane[y0:y0 + npix_y, x0:x0 + npix_x]


def _pad(model: np.ndarray, padding: float) -> np.ndarray:
    """A [chan, y, x] model zero-padded on every side by ``padding`` (see :func:`padded_size`)."""
    if padding == 1.0:
        return model
    channels, npix_y, npix_x = model.shape
    padded = np.zeros((channels, padded_size(npix_y, padding), padded_size(npix_x, padding)), model.dtype)
    y0, x0 = (padded.shape[1] - npix_y) // 2, (padded.shape[2] - npix_x) // 2
    padded[:, y0:y0 + npix_y, x0:x0 + npix_x] = model
    return padded


def _check_grid(npix_x: int, npix_y: int) -> None:
    if npix_x % 2 or npix_y % 2 or npix_x < 32 or npix_y < 32:
        raise ValueError(f"image size {npix_x}x{npix_y}: both sides must be even and at least 32 pixels")


def _data_and_weights(vis: Visibility, weights: np.ndarray | None, psf: bool, precision: str,
                      epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    vis_i = single_plane(vis)
    vis_dtype, weight_dtype = gridding_dtypes(precision, epsilon)
    weights = unflagged_weights(vis_i, weights, weight_dtype)
    data = np.ones(weights.shape, vis_dtype) if psf else vis_i.vis[:, :, 0].astype(vis_dtype, copy=False)
    return data, weights


def _columns(selected: np.ndarray) -> slice | np.ndarray:
    """A slice for a contiguous run of channel indices (a view, no copy for all channels), else the indices."""
    start, stop = int(selected[0]), int(selected[-1]) + 1
    return slice(start, stop) if stop - start == selected.size else selected


def _small_grid(vis: Visibility, npix_x: int, npix_y: int, cell_rad: float, small_inversion: bool,
                bandwidth: float | None) -> SmallGrid | None:
    """The small-inversion grid, or None to grid the requested image (see the module)."""
    if not small_inversion:
        return None
    if bandwidth is None:
        bandwidth = vis_bandwidth(vis, npix_x, npix_y, cell_rad)
    return small_grid(npix_x, npix_y, cell_rad, bandwidth)


def _pixel_sizes(small: SmallGrid | None, cell_rad: float) -> tuple[float, float]:
    return (cell_rad, cell_rad) if small is None else small.pixel_sizes(cell_rad)


def _invert(vis: Visibility, data: np.ndarray, weights: np.ndarray, *, npix_x: int, npix_y: int, cell_rad: float,
            epsilon: float, nthreads: int, do_wstacking: bool, channels_out: int,
            channel_index: np.ndarray | None, small_inversion: bool, bandwidth: float | None,
            padding: float = 1.0) -> ImageSum:
    _check_grid(npix_x, npix_y)
    padded_x, padded_y = padded_size(npix_x, padding), padded_size(npix_y, padding)
    small = _small_grid(vis, padded_x, padded_y, cell_rad, small_inversion, bandwidth)
    grid_y, grid_x = (padded_y, padded_x) if small is None else small.small
    pixsize_x, pixsize_y = _pixel_sizes(small, cell_rad)
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else np.asarray(channel_index)
    image = np.zeros((channels_out, npix_y, npix_x))
    weight_sum = np.zeros(channels_out)
    uvw = np.ascontiguousarray(vis.uvw, dtype=np.float64)
    for out in range(channels_out):
        selected = np.flatnonzero(channel_index == out)
        if selected.size == 0:
            continue
        columns = _columns(selected)
        wgt = np.ascontiguousarray(weights[:, columns])
        total = wgt.sum(dtype=np.float64)
        if total <= 0:
            continue
        dirty = vis2dirty(
            uvw=uvw, freq=np.ascontiguousarray(vis.frequency[selected], dtype=np.float64),
            vis=np.ascontiguousarray(data[:, columns]), wgt=wgt, npix_x=grid_x, npix_y=grid_y,
            pixsize_x=pixsize_x, pixsize_y=pixsize_y, epsilon=epsilon,
            do_wgridding=do_wstacking, nthreads=nthreads, flip_v=True, divide_by_n=False,
        )
        # ducc0's first axis runs along -l (our x) and its second along m (our y, given flip_v):
        # transpose to [y, x].
        dirty = dirty.T
        image[out] = _crop(dirty if small is None else to_requested(dirty, small, (padded_y, padded_x)), npix_y, npix_x)
        weight_sum[out] = total
    return ImageSum(image, weight_sum)


def invert(vis: Visibility, *, npix_x: int, npix_y: int, cell_rad: float, weights: np.ndarray | None = None,
           epsilon: float = 1e-5, nthreads: int = 1, do_wstacking: bool = True, channels_out: int = 1,
           channel_index: np.ndarray | None = None, precision: str = "double", small_inversion: bool = True,
           bandwidth: float | None = None, padding: float = 1.0) -> ImageSum:
    """The unnormalised dirty image of ``vis`` and its sum of weights: of its one plane (Stokes I, Q, U, V
    or a correlation, see :func:`sdpflow.radio.datamodels.single_plane`), else of its Stokes I.

    npix_x, npix_y: image size in pixels (even, >= 32); cell_rad: pixel size in radians;
    weights: imaging weights [row, chan] (default: the natural Stokes I weights), flagged
    samples get zero weight; epsilon: accuracy of the gridder; do_wstacking: correct the w
    term; channels_out: output channels (1 = multi-frequency synthesis), the input channels
    split into equal contiguous groups unless ``channel_index`` [chan] says where each goes;
    precision: "single" or "double" gridding (see the module); small_inversion: grid on the
    smallest image that Nyquist-samples ``bandwidth`` (wavelengths; default: that of this ``vis``'s
    baselines) and interpolate up (see the module); padding: grid an image this much larger on a side and
    keep its centre (WSClean's -padding, see the module).

    Returns an :class:`ImageSum`: ``image`` float64 [chan_out, y, x] and ``weight_sum`` float64
    [chan_out]; ``.normalised()`` is the dirty image in Jy/beam. A 1 Jy source at the phase centre:

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> image = invert(vis.with_vis(np.ones_like(vis.vis)), npix_x=64, npix_y=64, cell_rad=cell)
    >>> image.image.shape, image.weight_sum
    ((1, 64, 64), array([112.]))
    >>> dirty = image.normalised()                                     # Jy/beam, peak at (npix_y // 2, npix_x // 2)
    >>> round(float(dirty[0, 32, 32]), 4), bool(dirty.max() == dirty[0, 32, 32])
    (1.0, True)
    """
    data, weights = _data_and_weights(vis, weights, psf=False, precision=precision, epsilon=epsilon)
    return _invert(vis, data, weights, npix_x=npix_x, npix_y=npix_y, cell_rad=cell_rad, epsilon=epsilon,
                   nthreads=nthreads, do_wstacking=do_wstacking, channels_out=channels_out,
                   channel_index=channel_index, small_inversion=small_inversion, bandwidth=bandwidth, padding=padding)


def invert_psf(vis: Visibility, *, npix_x: int, npix_y: int, cell_rad: float, weights: np.ndarray | None = None,
               epsilon: float = 1e-5, nthreads: int = 1, do_wstacking: bool = True, channels_out: int = 1,
               channel_index: np.ndarray | None = None, precision: str = "double", small_inversion: bool = True,
               bandwidth: float | None = None, padding: float = 1.0) -> ImageSum:
    """The unnormalised point-spread function (the image of unit visibilities) and its weight sum.

    Same options as :func:`invert`; the normalised PSF peaks at 1 at pixel (npix_y//2, npix_x//2).
    """
    data, weights = _data_and_weights(vis, weights, psf=True, precision=precision, epsilon=epsilon)
    return _invert(vis, data, weights, npix_x=npix_x, npix_y=npix_y, cell_rad=cell_rad, epsilon=epsilon,
                   nthreads=nthreads, do_wstacking=do_wstacking, channels_out=channels_out,
                   channel_index=channel_index, small_inversion=small_inversion, bandwidth=bandwidth, padding=padding)


def dirty_image(vis: Visibility, *, npix_x: int, npix_y: int, cell_rad: float, **options) -> tuple[np.ndarray, np.ndarray]:
    """Normalised dirty image and PSF [chan_out, y, x] of one in-memory Visibility (Jy/beam)."""
    dirty = invert(vis, npix_x=npix_x, npix_y=npix_y, cell_rad=cell_rad, **options).normalised()
    psf = invert_psf(vis, npix_x=npix_x, npix_y=npix_y, cell_rad=cell_rad, **options).normalised()
    return dirty, psf


def predict(vis: Visibility, model: np.ndarray, *, cell_rad: float, epsilon: float = 1e-5, nthreads: int = 1,
            do_wstacking: bool = True, channel_index: np.ndarray | None = None, precision: str = "double",
            small_inversion: bool = True, bandwidth: float | None = None, padding: float = 1.0) -> np.ndarray:
    """Model visibilities [row, chan] (Jy) of a Stokes I model image at vis's uvw and frequencies.

    model: [chan_out, y, x] or [y, x] in Jy per pixel; input channel c uses model plane
    ``channel_index[c]`` (default: equal contiguous groups, as :func:`invert`); the result is
    complex128, or complex64 when ``precision`` is "single" (see the module); small_inversion,
    bandwidth (wavelengths): low-pass the model onto :func:`invert`'s small grid first; padding: zero-pad the
    model as :func:`invert` pads its image (see the module).

    A 1 Jy model pixel at the phase centre is 1 Jy on every baseline:

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> model = np.zeros((64, 64))
    >>> model[32, 32] = 1.0                                            # Jy/pixel
    >>> model_vis = predict(vis, model, cell_rad=cell)
    >>> model_vis.shape, model_vis.dtype                               # [row, chan], Jy
    ((112, 1), dtype('complex128'))
    >>> bool(np.allclose(model_vis, 1.0, atol=1e-5))
    True
    """
    vis_dtype, _ = gridding_dtypes(precision, epsilon)
    model = np.asarray(model, dtype=np.float32 if vis_dtype == np.complex64 else np.float64)
    if model.ndim == 2:
        model = model[None]
    _check_grid(model.shape[2], model.shape[1])
    model = _pad(model, padding)
    channels_out, npix_y, npix_x = model.shape
    small = _small_grid(vis, npix_x, npix_y, cell_rad, small_inversion, bandwidth)
    pixsize_x, pixsize_y = _pixel_sizes(small, cell_rad)
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else np.asarray(channel_index)
    uvw = np.ascontiguousarray(vis.uvw, dtype=np.float64)
    planes = []
    for out in range(channels_out):
        selected = np.flatnonzero(channel_index == out)
        if selected.size == 0 or not np.any(model[out]):
            continue
        plane = model[out]
        if small is not None:
            plane = to_small(plane, small).astype(model.dtype)
        planes.append((selected, dirty2vis(
            uvw=uvw, freq=np.ascontiguousarray(vis.frequency[selected], dtype=np.float64),
            dirty=np.ascontiguousarray(plane.T), pixsize_x=pixsize_x,
            pixsize_y=pixsize_y, epsilon=epsilon, do_wgridding=do_wstacking, nthreads=nthreads, flip_v=True,
            divide_by_n=False,
        )))
    if len(planes) == 1 and planes[0][0].size == vis.n_channels:
        return planes[0][1]  # one plane predicts every channel: ducc0's array is the result
    result = np.zeros((vis.n_rows, vis.n_channels), vis_dtype)
    for selected, plane in planes:
        result[:, _columns(selected)] = plane
    return result


def pixel_direction_cosines(npix_x: int, npix_y: int, cell_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Direction cosines (l [x], m [y]) of the pixel centres of an image."""
    l = -cell_rad * (np.arange(npix_x) - npix_x // 2)
    m = cell_rad * (np.arange(npix_y) - npix_y // 2)
    return l, m
