"""Imaging weights: natural, uniform and Briggs, defined as WSClean 3.1 defines them.

Uniform and Briggs weighting need the density of weights on a uv grid of the whole
observation. Each chunk computes :func:`weight_density` of its own visibilities; the sum of
those arrays over all chunks is the density to pass to :func:`imaging_weights`.

The grid is WSClean's (its ``ImageWeights``): the uv plane of the *padded* image
(:func:`weight_grid_shape`, ``-padding`` 1.2 by default), a cell of 1 / (width * pixel) wavelengths,
only the half plane v >= 0 (a sample with v < 0 counts at (-u, -v), once), cell edges at
whole multiples of the cell with u = 0 at the middle column (floor, not round), and samples
outside the grid get no weight. After the density, in this order: uniform (1 / density) or
Briggs (1 / (1 + density * f2), f2 = (5 * 10**-robust)**2 / (sum(D**2) / sum(D))) or natural (1
in every occupied cell); the rank filter (``-weighting-rank-filter``, on by default at 3 in
WSClean: a cell weighing more than 3 times the mean of the occupied cells of its 16 x 16
window is set to that); the Gaussian taper (``-taper-gaussian``) and the uv range
(``-minuv-l``/``-maxuv-l``), both evaluated at each cell's corner. A sample's imaging weight is
its data weight times its cell's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdpflow.radio.datamodels import SPEED_OF_LIGHT, Visibility, single_plane, unflagged_weights

_FWHM_PER_SIGMA = math.sqrt(8.0 * math.log(2.0))


@dataclass(frozen=True)
class WeightingOptions:
    """How data weights become imaging weights, with WSClean's option names and defaults.

    mode: "natural", "uniform" or "briggs" (``-weight``); robust: Briggs' robustness;
    rank_filter: the level of ``-weighting-rank-filter`` (0: off; WSClean's default 3);
    rank_filter_size: its window in cells (``-weighting-rank-filter-size``, 16);
    taper_gaussian_rad: FWHM of the image-plane Gaussian of ``-taper-gaussian`` in radians (0: none);
    minuv_l, maxuv_l: uv range in wavelengths (``-minuv-l``/``-maxuv-l``, 0: none);
    padding: the image padding that sizes the grid (``-padding``, 1.2).
    """

    mode: str = "briggs"
    robust: float = 0.0
    rank_filter: float = 3.0
    rank_filter_size: int = 16
    taper_gaussian_rad: float = 0.0
    minuv_l: float = 0.0
    maxuv_l: float = 0.0
    padding: float = 1.2

    def __post_init__(self) -> None:
        if self.mode not in ("natural", "uniform", "briggs"):
            raise ValueError(f"unknown weighting {self.mode!r}: choose natural, uniform or briggs")

    @property
    def needs_density(self) -> bool:
        """Whether the weights depend on the uv grid (not plain data weights)."""
        return self.mode != "natural" or bool(self.taper_gaussian_rad or self.minuv_l or self.maxuv_l)


def output_channel_index(n_channels: int, channels_out: int) -> np.ndarray:
    """Which output channel each of ``n_channels`` input channels goes to: equal contiguous groups."""
    if not 1 <= channels_out <= n_channels:
        raise ValueError(f"channels_out={channels_out} must be between 1 and the {n_channels} channels")
    return (np.arange(n_channels) * channels_out) // n_channels


def weight_grid_shape(npix_x: int, npix_y: int, padding: float = 1.2) -> tuple[int, int]:
    """(width, height) in cells of the weighting grid: the padded image, ceil(npix * padding) rounded up
    to a multiple of 4, as WSClean sizes it."""
    def padded(npix: int) -> int:
        size = math.ceil(npix * padding)
        return size + (-size) % 4
    return padded(npix_x), padded(npix_y)


def _grid_cells(vis: Visibility, width: int, height: int, cell_rad: float) -> np.ndarray:
    """Flat index [row, chan] of each sample's cell in a [height // 2, width] half-plane grid; -1 outside it."""
    scale = vis.frequency[None, :] / SPEED_OF_LIGHT
    u = vis.uvw[:, 0:1] * scale
    v = vis.uvw[:, 1:2] * scale
    flip = v < 0
    u, v = np.where(flip, -u, u), np.where(flip, -v, v)
    x = np.floor(u * (width * cell_rad) + width // 2).astype(np.int64)
    y = np.floor(v * (height * cell_rad)).astype(np.int64)
    inside = (x >= 0) & (x < width) & (y < height // 2)
    return np.where(inside, y * width + x, -1)


def weight_density(vis: Visibility, *, npix_x: int, npix_y: int, cell_rad: float, channels_out: int = 1,
                   channel_index: np.ndarray | None = None, padding: float = 1.2) -> np.ndarray:
    """Sum of Stokes I weights in each cell of the weighting grid: float64 [channels_out, height // 2, width].

    The grid is that of an npix_x x npix_y image of pixel size cell_rad (radians) padded by
    ``padding`` (:func:`weight_grid_shape`); each sample counts once, in the half plane v >= 0.
    Flagged samples and samples outside the grid count zero. Arrays from different chunks of
    one observation can be summed.

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> density = weight_density(vis, npix_x=64, npix_y=64, cell_rad=cell)
    >>> density.shape, float(density.sum())                            # 80 x 80 padded grid, half of it; 112 samples
    ((1, 40, 80), 112.0)
    """
    weight = unflagged_weights(single_plane(vis))
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else channel_index
    width, height = weight_grid_shape(npix_x, npix_y, padding)
    cells = _grid_cells(vis, width, height, cell_rad)
    plane = width * (height // 2)
    flat = np.asarray(channel_index, dtype=np.int64)[None, :] * plane + cells
    inside = cells >= 0
    density = np.bincount(flat[inside], weights=weight[inside], minlength=channels_out * plane)
    return density.reshape(channels_out, height // 2, width)


def weight_factors(density: np.ndarray, options: WeightingOptions, cell_rad: float) -> np.ndarray:
    """Each grid cell's factor on the data weights [channels_out, height // 2, width], from the summed
    :func:`weight_density`: the weighting, then the rank filter, the Gaussian taper and the uv range."""
    factors = np.zeros_like(density)
    occupied = density != 0
    if options.mode == "natural":
        factors[occupied] = 1.0
    elif options.mode == "uniform":
        factors[occupied] = 1.0 / density[occupied]
    else:
        for c, plane in enumerate(density):
            total = plane.sum()
            mean_weight = (plane**2).sum() / total if total > 0 else 1.0
            f2 = (5.0 * 10.0 ** (-options.robust)) ** 2 / mean_weight
            factors[c] = 1.0 / (1.0 + plane * f2)
    if options.rank_filter >= 1.0:
        factors = np.stack([_rank_filter(plane, options.rank_filter, options.rank_filter_size) for plane in factors])
    half_height, width = density.shape[1:]
    v = np.arange(half_height)[:, None] / (2 * half_height * cell_rad)
    u = (np.arange(width)[None, :] - width // 2) / (width * cell_rad)
    uv_squared = u**2 + v**2
    if options.taper_gaussian_rad:
        sigma_uv = _FWHM_PER_SIGMA / (2.0 * math.pi * options.taper_gaussian_rad)
        factors = factors * np.exp(-uv_squared / (2.0 * sigma_uv**2))
    if options.minuv_l:
        factors = np.where(uv_squared < options.minuv_l**2, 0.0, factors)
    if options.maxuv_l:
        factors = np.where(uv_squared > options.maxuv_l**2, 0.0, factors)
    return factors


def _rank_filter(plane: np.ndarray, level: float, size: int) -> np.ndarray:
    """Cells above ``level`` times the mean of the nonzero cells in their window, set to that; the window of
    cell (y, x) spans [y - size//2, y + size//2) x [x - size//2, x + size//2), cut at the grid's edges."""
    half = size // 2
    nonzero = plane != 0
    sums = _window_sums(plane, half)
    counts = _window_sums(nonzero.astype(np.float64), half)
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = level * sums / counts
    return np.where(nonzero & (plane > limit), limit, plane)


def _window_sums(plane: np.ndarray, half: int) -> np.ndarray:
    """Sum over [y - half, y + half) x [x - half, x + half) within the plane, for every cell (summed-area table)."""
    ny, nx = plane.shape
    table = np.zeros((ny + 1, nx + 1))
    table[1:, 1:] = plane.cumsum(axis=0).cumsum(axis=1)
    y0 = np.clip(np.arange(ny) - half, 0, ny)[:, None]
    y1 = np.clip(np.arange(ny) + half, 0, ny)[:, None]
    x0 = np.clip(np.arange(nx) - half, 0, nx)[None, :]
    x1 = np.clip(np.arange(nx) + half, 0, nx)[None, :]
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def imaging_weights(vis: Visibility, *, density: np.ndarray | None = None, weighting: str = "briggs",
                    robust: float = 0.0, npix_x: int | None = None, npix_y: int | None = None,
                    cell_rad: float | None = None, channel_index: np.ndarray | None = None,
                    options: WeightingOptions | None = None) -> np.ndarray:
    """Stokes I imaging weights [row, chan] float64 (0 where flagged or outside the weighting grid).

    weighting, robust: the mode and Briggs robustness (robust -2 is near uniform, +2 near
    natural), or ``options`` (a :class:`WeightingOptions`, which then wins) for the rank filter,
    taper, uv range and padding too. density: the summed :func:`weight_density` of the whole
    observation, needed unless the options are plain natural weighting (npix_x, npix_y,
    cell_rad and padding must be those it was made with).

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> density = weight_density(vis, npix_x=64, npix_y=64, cell_rad=cell)
    >>> plain = WeightingOptions("uniform", rank_filter=0)            # uniform without WSClean's rank filter
    >>> uniform = imaging_weights(vis, density=density, npix_x=64, npix_y=64, cell_rad=cell, options=plain)
    >>> uniform.shape, uniform.dtype, float(uniform.max())             # no uv cell weighs more than 1
    ((112, 1), dtype('float64'), 1.0)
    >>> briggs = imaging_weights(vis, density=density, weighting="briggs", robust=0.0, npix_x=64, npix_y=64,
    ...                          cell_rad=cell)
    >>> bool(np.all((briggs > 0) & (briggs < 1)))
    True
    """
    options = options if options is not None else WeightingOptions(mode=weighting, robust=robust)
    weight = unflagged_weights(single_plane(vis))
    if not options.needs_density:  # plain natural weighting: the data weights, on the grid only (if known)
        if npix_x is None or npix_y is None or cell_rad is None:
            return weight
        cells = _grid_cells(vis, *weight_grid_shape(npix_x, npix_y, options.padding), cell_rad)
        return np.where(cells >= 0, weight, 0.0)
    if density is None or npix_x is None or npix_y is None or cell_rad is None:
        raise ValueError(f"{options.mode} weighting needs density, npix_x, npix_y and cell_rad")
    return gridded_weights(vis, weight_factors(density, options, cell_rad), npix_x=npix_x, npix_y=npix_y,
                           cell_rad=cell_rad, channel_index=channel_index, padding=options.padding)


def gridded_weights(vis: Visibility, factors: np.ndarray, *, npix_x: int, npix_y: int, cell_rad: float,
                    channel_index: np.ndarray | None = None, padding: float = 1.2) -> np.ndarray:
    """Stokes I imaging weights [row, chan]: each sample's data weight times its cell's :func:`weight_factors`
    (0 where flagged or off the grid). factors: [channels_out, height // 2, width] of the grid of an
    npix_x x npix_y image of pixel cell_rad padded by ``padding``; channel_index: the output channel
    (plane of ``factors``) of each of the visibilities' channels."""
    weight = unflagged_weights(single_plane(vis))
    channels_out = factors.shape[0]
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else channel_index
    width, height = weight_grid_shape(npix_x, npix_y, padding)
    if factors.shape[1:] != (height // 2, width):
        raise ValueError(f"grid of shape {factors.shape[1:]} is not the {height // 2} x {width} weighting grid")
    cells = _grid_cells(vis, width, height, cell_rad)
    flat = np.asarray(channel_index, dtype=np.int64)[None, :] * (width * (height // 2)) + cells
    cell_factor = np.where(cells >= 0, np.take(factors.ravel(), np.maximum(flat, 0)), 0.0)
    return np.where(weight > 0, weight * cell_factor, 0.0)
