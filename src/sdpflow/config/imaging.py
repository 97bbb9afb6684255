"""Imaging, deconvolution, calibration and partitioning: the sections of continuum and ICAL.

Option names follow WSClean where WSClean has them (``--size``, ``--scale``, ``--niter``,
``--mgain``, ``--auto-threshold``, ``--weight``, ``--channels-out``, ``--data-column``...).
"""

from __future__ import annotations

import math
import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig

_ANGLE_UNITS_RAD = {
    "asec": math.pi / 180 / 3600, "arcsec": math.pi / 180 / 3600,
    "amin": math.pi / 180 / 60, "arcmin": math.pi / 180 / 60,
    "deg": math.pi / 180, "rad": 1.0, "mas": math.pi / 180 / 3600e3,
}


def angle_to_rad(text: str) -> float:
    """``'20asec'``, ``'1.5amin'``, ``'0.01deg'`` -> radians (a bare number is degrees, as in WSClean)."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-z]*)\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not an angle like 20asec, 1amin or 0.01deg")
    value, unit = float(match.group(1)), match.group(2) or "deg"
    if unit not in _ANGLE_UNITS_RAD:
        raise ValueError(f"unknown angle unit {unit!r}: use asec, amin, deg or rad")
    return value * _ANGLE_UNITS_RAD[unit]


def sexagesimal_to_rad(text: str, *, hours: bool) -> float:
    """An RA (``05h30m12.5s``, ``5:30:12.5``; ``hours``) or a Dec (``-30d00m00s``, ``-30.0.0``) in radians;
    a plain angle (``83.5deg``, ``83.5``: degrees) is taken as it is, as WSClean's -shift takes them."""
    units = "hms" if hours else "dms"
    match = re.fullmatch(rf"\s*([+-]?)(\d+)[{units[0]}:.](\d+)[{units[1]}:.](\d+(?:\.\d*)?){units[2]}?\s*", str(text))
    if not match:
        try:
            return angle_to_rad(text)
        except ValueError:
            example = "an RA like 05h30m00s" if hours else "a Dec like -30d00m00s"
            raise ValueError(f"{text!r} is not {example}, or an angle like 82.5deg") from None
    sign, whole, minutes, seconds = match.groups()
    value = int(whole) + int(minutes) / 60 + float(seconds) / 3600
    return (-1 if sign == "-" else 1) * math.radians(value * (15 if hours else 1))


def taper_rad(text: str) -> float:
    """A taper angle in radians: :func:`angle_to_rad`, but a bare number is arcsec (WSClean's -taper-gaussian)."""
    text = str(text).strip()
    return angle_to_rad(text + "asec" if re.fullmatch(r"[0-9.eE+-]+", text) else text)


class ImagingConfig(Section):
    """How visibilities become images (ducc0 w-gridder)."""

    size: tuple[int, int] = Field((512, 512), description="image width and height in pixels (even)",
                                  json_schema_extra={"cli": "--size"})
    scale: str = Field("auto", description="pixel size, e.g. 20asec, 1amin, 0.01deg; auto = a third of the "
                       "finest fringe (1/(3 uv_max))", json_schema_extra={"cli": "--scale"})
    weight: str = Field("briggs 0", description="natural, uniform, or briggs ROBUST",
                        json_schema_extra={"cli": "--weight"})
    channels_out: int = Field(1, ge=1, description="output channels (1 = multi-frequency synthesis)",
                              json_schema_extra={"cli": "--channels-out"})
    pol: str = Field("I", description="polarisations to image, as WSClean's -pol: I, IQUV, IQU, QU, V, or "
                     "correlations xx,yy / rr,ll / xx,xy,yx,yy (Stokes I is always imaged too: self-calibration "
                     "and restored.fits use it); each gets restored-S.fits, residual-S.fits... cubes",
                     json_schema_extra={"cli": "--pol"})
    name: str | None = Field(
        None, description="also write each image under WSClean's file names in the run folder, one plane per file: "
        "NAME-0003-Q-image.fits, NAME-MFS-I-residual.fits... (as WSClean's -name)", json_schema_extra={"cli": "--name"})
    data_column: Literal["DATA", "CORRECTED_DATA", "MODEL_DATA"] = Field(
        "DATA", description="MS column to image", json_schema_extra={"cli": "--data-column"})
    epsilon: float = Field(1e-4, gt=0, lt=0.1, description="gridder accuracy (relative); 1e-4 as WSClean's wgridder",
                           json_schema_extra={"cli": "--epsilon"})
    precision: Literal["single", "double"] = Field(
        "single", description="gridding in complex64/float32 (single, ~30% faster) or complex128/float64 "
        "(double); an epsilon below 1e-5 always grids in double", json_schema_extra={"cli": "--precision"})
    wstacking: bool = Field(True, description="correct the w term", json_schema_extra={"cli": "--wstacking"})
    small_inversion: bool = Field(
        True, description="grid on the smallest image that Nyquist-samples the longest baseline and "
        "Fourier-interpolate to the requested size (WSClean's default; --no-small-inversion turns it off)",
        json_schema_extra={"cli": "--small-inversion"})
    threads_per_task: int = Field(1, ge=1, description="ducc0 threads in each gridding task")

    @field_validator("size")
    @classmethod
    def _even_sizes(cls, size: tuple[int, int]) -> tuple[int, int]:
        if any(side % 2 or side < 32 for side in size):
            raise ValueError(f"image size {size[0]} {size[1]}: both sides must be even and at least 32")
        return size

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
            raise ValueError(f"name {name!r}: a file-name prefix of letters, digits and . _ + - (the files go into "
                             "the run folder; choose the folder with --out)")
        return name

    @field_validator("pol")
    @classmethod
    def _valid_pol(cls, pol: str) -> str:
        from sdpflow.radio.stokes import parse_pol  # numpy only: no radio science at import

        parse_pol(pol)  # ValueError: neither Stokes parameters nor correlations
        return pol

    @property
    def stokes(self) -> tuple[str, ...]:
        """The Stokes parameters (or correlations) asked for, e.g. ("Q", "U") or ("XX", "YY")."""
        from sdpflow.radio.stokes import parse_pol

        return parse_pol(self.pol)

    @property
    def stokes_planes(self) -> tuple[str, ...]:
        """What the chunks hold and grid: Stokes I first (the PSF, weighting and self-calibration use it), then
        the others asked for (I, Q, U, V order; correlations as asked)."""
        return ("I",) + tuple(name for name in self.stokes if name != "I")

    @field_validator("scale")
    @classmethod
    def _valid_scale(cls, scale: str) -> str:
        if scale != "auto" and not 0 < angle_to_rad(scale) < float("inf"):
            raise ValueError(f"pixel size {scale!r} must be positive and finite, e.g. 20asec")
        return scale

    @field_validator("weight")
    @classmethod
    def _valid_weight(cls, weight: str) -> str:
        parts = weight.split()
        if parts and parts[0] in ("natural", "uniform") and len(parts) == 1:
            return weight
        if len(parts) == 2 and parts[0] == "briggs":
            float(parts[1])
            return weight
        raise ValueError(f"weight {weight!r}: use natural, uniform or 'briggs ROBUST' (e.g. briggs 0)")

    @property
    def weighting(self) -> str:
        return self.weight.split()[0]

    @property
    def robust(self) -> float:
        parts = self.weight.split()
        return float(parts[1]) if len(parts) == 2 else 0.0

    # -- data selection and phase shift, as WSClean's options (checked against the MS when a run starts) --
    interval: tuple[int, int] | None = Field(
        None, description="image timesteps START to END (END exclusive, from 0), as WSClean's -interval",
        json_schema_extra={"cli": "--interval"})
    channel_range: tuple[int, int] | None = Field(
        None, description="image channels START to END (END exclusive, from 0), as WSClean's -channel-range",
        json_schema_extra={"cli": "--channel-range"})
    field: int | None = Field(None, ge=0, description="field id to image, as WSClean's -field (none: the field "
                              "the MS's rows hold; one field per MS: a MS whose rows hold several must be split "
                              "first)", json_schema_extra={"cli": "--field"})
    spws: str | None = Field(None, description="spectral window ids to image, comma-separated, as WSClean's -spws "
                             "(one per MS: its rows' window must be among them)", json_schema_extra={"cli": "--spws"})
    shift: tuple[str, str] | None = Field(
        None, description="RA DEC of a new phase centre (05h30m00s -30d00m00s, or degrees): the visibilities are "
        "phase-rotated to it and the image is centred on it, as WSClean's -shift", json_schema_extra={"cli": "--shift"})

    padding: float = Field(1.0, ge=1.0, le=4.0, description="grid an image this many times larger on a side and "
                           "keep its centre, as WSClean's -padding (1.0: ducc0's kernel already holds aliasing "
                           "below --epsilon)", json_schema_extra={"cli": "--padding"})
    predict: str | None = Field(
        None, description="only predict: the visibilities of this model image (Jy/pixel, e.g. a model.fits or "
        "WSClean's NAME-model.fits, at its own phase centre) are written to the MS's MODEL_DATA; nothing is imaged "
        "(WSClean's -predict, which reads NAME-model.fits)", json_schema_extra={"cli": "--predict"})
    overwrite_model_data: bool = Field(
        False, description="with --predict: replace a MODEL_DATA that another tool wrote (sdpflow replaces its "
        "own without asking)", json_schema_extra={"cli": "--overwrite-model-data"})

    @field_validator("interval", "channel_range")
    @classmethod
    def _ordered_range(cls, span: tuple[int, int] | None) -> tuple[int, int] | None:
        if span is not None and not 0 <= span[0] < span[1]:
            raise ValueError(f"{span[0]} {span[1]}: give START END with 0 <= START < END (END exclusive)")
        return span

    @field_validator("spws")
    @classmethod
    def _spw_list(cls, spws: str | None) -> str | None:
        if spws is not None and not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", spws):
            raise ValueError(f"spectral windows {spws!r}: give ids separated by commas, e.g. 0 or 0,1")
        return spws

    @field_validator("shift")
    @classmethod
    def _valid_shift(cls, shift: tuple[str, str] | None) -> tuple[str, str] | None:
        if shift is not None:
            ra, dec = sexagesimal_to_rad(shift[0], hours=True), sexagesimal_to_rad(shift[1], hours=False)
            if not abs(dec) <= math.pi / 2 or not math.isfinite(ra):
                raise ValueError(f"shift {shift[0]} {shift[1]}: the declination must lie within -90 and +90 degrees")
        return shift

    @property
    def spw_ids(self) -> tuple[int, ...] | None:
        return None if self.spws is None else tuple(int(part) for part in self.spws.split(","))

    @property
    def shift_rad(self) -> tuple[float, float] | None:
        """(RA, Dec) of --shift in radians, or None."""
        if self.shift is None:
            return None
        return sexagesimal_to_rad(self.shift[0], hours=True), sexagesimal_to_rad(self.shift[1], hours=False)

    # -- weighting options as WSClean's (issue 15) --
    taper_gaussian: str | None = Field(
        None, description="taper the weights with a Gaussian whose image-plane FWHM is this angle, e.g. 60asec, 2amin "
        "(a bare number is arcsec, as WSClean's -taper-gaussian)", json_schema_extra={"cli": "--taper-gaussian"})
    minuv_l: float = Field(0.0, ge=0, description="weigh zero the uv cells nearer than this "
                           "many wavelengths (0: none; as WSClean's -minuv-l)", json_schema_extra={"cli": "--minuv-l"})
    maxuv_l: float = Field(0.0, ge=0, description="weigh zero the uv cells farther than this "
                           "many wavelengths (0: none; as WSClean's -maxuv-l)", json_schema_extra={"cli": "--maxuv-l"})
    weighting_rank_filter: float = Field(
        3.0, ge=0, description="set uv cells weighing more than this many times the mean of "
        "their window to that level (0: off; WSClean's -weighting-rank-filter, on at 3 by default in WSClean too)",
        json_schema_extra={"cli": "--weighting-rank-filter"})
    weighting_rank_filter_size: int = Field(
        16, ge=1, le=4096, description="window of the rank filter in uv cells (WSClean's -weighting-rank-filter-size)",
        json_schema_extra={"cli": "--weighting-rank-filter-size"})

    @field_validator("taper_gaussian")
    @classmethod
    def _valid_taper(cls, taper: str | None) -> str | None:
        if taper is not None and not 0 < taper_rad(taper) < float("inf"):
            raise ValueError(f"taper {taper!r} must be a positive, finite angle, e.g. 60asec")
        return taper

    @model_validator(mode="after")
    def _uv_range_not_empty(self) -> "ImagingConfig":
        if self.minuv_l and self.maxuv_l and self.minuv_l >= self.maxuv_l:
            raise ValueError(f"minuv_l {self.minuv_l:g} is not below maxuv_l {self.maxuv_l:g}: no uv cell would "
                             "keep a weight")
        return self

    def weighting_options(self, padding: float = 1.2):
        """The :class:`sdpflow.radio.weighting.WeightingOptions` of these settings (``padding``: the image's)."""
        from sdpflow.radio.weighting import WeightingOptions  # numpy only: no radio science at import

        return WeightingOptions(self.weighting, self.robust, self.weighting_rank_filter,
                                self.weighting_rank_filter_size,
                                taper_rad(self.taper_gaussian) if self.taper_gaussian else 0.0,
                                self.minuv_l, self.maxuv_l, padding)


class DeconvolutionConfig(Section):
    """The minor cycle (Hogbom or multi-scale CLEAN) and when the major cycles stop."""

    niter: int = Field(1000, ge=0, description="maximum CLEAN components of each image cleaned on its own (each "
                       "Stokes parameter and output channel unless joined), over all major cycles, as WSClean counts",
                       json_schema_extra={"cli": "--niter"})
    gain: float = Field(0.1, gt=0, le=1, description="loop gain", json_schema_extra={"cli": "--gain"})
    mgain: float = Field(0.8, gt=0, le=1, description="major-cycle gain: a minor cycle cleans the peak down by "
                         "this fraction", json_schema_extra={"cli": "--mgain"})
    threshold: float = Field(0.0, ge=0, description="stop at this peak residual (Jy/beam)",
                             json_schema_extra={"cli": "--threshold"})
    auto_threshold: float | None = Field(3.0, gt=0, description="stop at this many sigma of the residual "
                                         "(sigma from the MAD)", json_schema_extra={"cli": "--auto-threshold"})
    multiscale: bool = Field(False, description="multi-scale CLEAN instead of Hogbom",
                             json_schema_extra={"cli": "--multiscale"})
    scales: str | list[float] | None = Field(
        None, description="multi-scale scales in pixels, a comma list as WSClean's -multiscale-scales 0,4,16 "
        "(default 0, 4, 8, 16)", json_schema_extra={"cli": "--multiscale-scales"})
    nmajor: int = Field(5, ge=1, le=100, description="maximum major cycles (WSClean's -nmiter; --nmajor too)",
                        json_schema_extra={"cli": "--nmiter", "cli_aliases": ["--nmajor"]})
    join_polarizations: bool = Field(
        False, description="with --pol: clean the Stokes parameters asked for together (peaks of the root sum of "
        "their squares, components at the same pixels in each), per channel, as WSClean's -join-polarizations; "
        "Hogbom only", json_schema_extra={"cli": "--join-polarizations"})
    join_channels: bool = Field(
        False, description="clean the output channels together: peaks of their mean (with --join-polarizations, "
        "of the root sum of the squares of each Stokes parameter's mean), components at the same pixels in each "
        "channel, as WSClean's -join-channels; Hogbom only", json_schema_extra={"cli": "--join-channels"})
    fit_spectral_pol: int | None = Field(
        None, ge=1, description="with --join-channels: each component's values across the output channels are "
        "replaced by the polynomial in frequency of this many terms fitted to them (weighted by the channels' "
        "imaging weights), as WSClean's -fit-spectral-pol", json_schema_extra={"cli": "--fit-spectral-pol"})

    # -- masks, restoring beam and source list, as WSClean's options (issue 15) --
    auto_mask: float | None = Field(
        None, ge=0, description="clean to this many sigma everywhere, then only where components were found, down "
        "to --auto-threshold, as WSClean's -auto-mask (default: 5 for ical, off for continuum; 0: off)",
        json_schema_extra={"cli": "--auto-mask"})
    local_rms: bool = Field(False, description="thresholds relative to the local noise (a sliding-window RMS map of "
                            "the residual) instead of one sigma, as WSClean's -local-rms; Hogbom only",
                            json_schema_extra={"cli": "--local-rms"})
    local_rms_window: float = Field(25.0, gt=0, description="width of the --local-rms window in restoring beams",
                                    json_schema_extra={"cli": "--local-rms-window"})
    fits_mask: str | None = Field(None, description="FITS image of the image's size and grid: clean only where it is "
                                  "non-zero, as WSClean's -fits-mask", json_schema_extra={"cli": "--fits-mask"})
    no_negative: bool = Field(False, description="no negative components, as WSClean's -no-negative; Hogbom only",
                              json_schema_extra={"cli": "--no-negative", "cli_off": "--negative"})
    circular_beam: bool = Field(False, description="restore with a circular beam (minor axis = the fitted major "
                                "axis), as WSClean's -circular-beam", json_schema_extra={"cli": "--circular-beam"})
    beam_size: str | None = Field(None, description="circular restoring beam FWHM (a bare number is arcsec; or 1amin...)"
                                  ", as WSClean's -beam-size", json_schema_extra={"cli": "--beam-size"})
    beam_shape: tuple[str, str, str] | None = Field(
        None, description="restoring beam MAJ MIN PA (bare numbers: arcsec, arcsec, deg), as WSClean's -beam-shape",
        json_schema_extra={"cli": "--beam-shape"})
    save_source_list: bool = Field(False, description="write the components to sources.txt in WSClean's (BBS/DP3) "
                                   "format, as -save-source-list", json_schema_extra={"cli": "--save-source-list"})

    @field_validator("scales", mode="before")
    @classmethod
    def _comma_scales(cls, scales):
        if isinstance(scales, str):
            try:
                scales = [float(part) for part in scales.split(",") if part.strip()]
            except ValueError:
                raise ValueError(f"multiscale scales {scales!r}: give pixels as a comma list, e.g. 0,4,16") from None
        return scales

    @field_validator("scales")
    @classmethod
    def _valid_scales(cls, scales):
        if scales is not None and (not scales or any(not 0 <= s < 1e6 for s in scales)):
            raise ValueError(f"multiscale scales {scales!r}: give non-negative pixels, e.g. 0,4,16")
        return scales

    @field_validator("beam_size")
    @classmethod
    def _valid_beam_size(cls, size: str | None) -> str | None:
        if size is not None:
            _beam_angle_rad(size, "asec")
        return size

    @field_validator("beam_shape")
    @classmethod
    def _valid_beam_shape(cls, shape: tuple[str, str, str] | None) -> tuple[str, str, str] | None:
        if shape is not None:
            major, minor = _beam_angle_rad(shape[0], "asec"), _beam_angle_rad(shape[1], "asec")
            _beam_angle_rad(shape[2], "deg", positive=False)
            if minor > major:
                raise ValueError(f"beam shape {' '.join(shape)}: the minor axis is larger than the major")
        return shape

    @property
    def fixed_beam_rad(self) -> tuple[float, float, float] | None:
        """(bmaj, bmin, bpa) radians of --beam-shape or --beam-size (FWHM), or None: the beam fitted to the PSF."""
        if self.beam_shape is not None:
            return (_beam_angle_rad(self.beam_shape[0], "asec"), _beam_angle_rad(self.beam_shape[1], "asec"),
                    _beam_angle_rad(self.beam_shape[2], "deg", positive=False))
        if self.beam_size is not None:
            size = _beam_angle_rad(self.beam_size, "asec")
            return size, size, 0.0
        return None

    @model_validator(mode="after")
    def _joined_hogbom(self) -> "DeconvolutionConfig":
        if self.fit_spectral_pol is not None and not self.join_channels:
            raise ValueError("--fit-spectral-pol fits each component across the joined channels: add --join-channels")
        if (self.join_polarizations or self.join_channels) and self.multiscale:
            raise ValueError("joined cleaning is Hogbom only: drop --multiscale, or --join-polarizations and "
                             "--join-channels")
        weighted = [flag for flag, on in (("--local-rms", self.local_rms), ("--no-negative", self.no_negative)) if on]
        if weighted and (self.multiscale or self.join_polarizations or self.join_channels):
            raise ValueError(f"{' and '.join(weighted)}: Hogbom only, each plane on its own: drop --multiscale, "
                             "--join-polarizations and --join-channels")
        if self.beam_size is not None and self.beam_shape is not None:
            raise ValueError("--beam-size and --beam-shape both set the restoring beam: give one")
        return self


def _beam_angle_rad(text: str, bare_unit: str, *, positive: bool = True) -> float:
    """An angle of the restoring beam options in radians; a bare number is in ``bare_unit`` (as WSClean)."""
    text = str(text).strip()
    value = angle_to_rad(text + bare_unit if re.fullmatch(r"[0-9.eE+-]+", text) else text)
    if positive and not 0 < value < math.pi:
        raise ValueError(f"beam axis {text!r} must be positive and below 180 deg, e.g. 30asec")
    return value


class TermConfig(Section):
    """One calibration term of the context (T, G or B)."""

    first_selfcal: int = Field(1, ge=0, description="first major cycle whose model calibrates this term",
                               json_schema_extra={"cli": "first-selfcal"})
    phase_only: bool = Field(False, description="solve phases only", json_schema_extra={"cli": "phase-only"})
    timeslice: float | None = Field(None, gt=0, description="solution interval in seconds (none = each integration)",
                                    json_schema_extra={"cli": "timeslice"})


class CalibrationConfig(Section):
    """Self-calibration: which terms, from which cycle, over which interval."""

    context: str = Field("TG", description="terms solved in order: T (phase), G (complex), B (bandpass)",
                         json_schema_extra={"cli": "--calibration-context"})
    T: TermConfig = Field(TermConfig(first_selfcal=1, phase_only=True), json_schema_extra={"cli_prefix": "--T-"})
    G: TermConfig = Field(TermConfig(first_selfcal=3), json_schema_extra={"cli_prefix": "--G-"})
    B: TermConfig = Field(TermConfig(first_selfcal=4), json_schema_extra={"cli_prefix": "--B-"})
    normalise_amplitudes: bool = Field(True, description="hold the mean gain amplitude of G and B at 1, keeping "
                                       "the flux scale (CASA's solnorm)", json_schema_extra={"cli": "--normalise-amplitudes"})
    refant: int = Field(0, ge=0, description="reference antenna (its phase is zero)", json_schema_extra={"cli": "--refant"})
    tolerance: float = Field(1e-6, gt=0, description="gain solver convergence tolerance")
    write_corrected: bool = Field(False, description="write CORRECTED_DATA back to the MS at the end",
                                  json_schema_extra={"cli": "--write-corrected"})

    @field_validator("context")
    @classmethod
    def _valid_context(cls, context: str) -> str:
        if not context or any(term not in "TGB" for term in context) or len(set(context)) != len(context):
            raise ValueError(f"calibration context {context!r}: use letters T, G, B, each at most once (e.g. TG)")
        return context


class PartitionConfig(Section):
    """How visibilities are split into chunks that workers read and keep."""

    time_chunks: int = Field(4, ge=1, description="chunks along time (aligned to solution intervals)",
                             json_schema_extra={"cli": "--time-chunks"})
    frequency_chunks: int = Field(1, ge=1, description="chunks along frequency (continuum only)",
                                  json_schema_extra={"cli": "--frequency-chunks"})


class ContinuumConfig(Section):
    """Cotton-Schwab imaging: major cycles on the cluster, minor cycles on one worker."""

    ms: str | None = Field(None, description="input MeasurementSet", json_schema_extra={"cli": "--ms"})
    imaging: ImagingConfig = ImagingConfig()
    deconvolution: DeconvolutionConfig = DeconvolutionConfig()
    partition: PartitionConfig = PartitionConfig()
    cluster: ClusterConfig = ClusterConfig()
    # -- applying an existing gain table (issue 15) --
    apply_solutions: str | None = Field(
        None, description="H5parm of gain solutions (LoSoTo/DP3 layout, e.g. an ICAL run's gains.h5parm) applied to "
        "the visibilities before imaging", json_schema_extra={"cli": "--apply-solutions"})

    #: --auto-mask when none is given (sigma; 0: off)
    default_auto_mask: ClassVar[float] = 0.0

    @property
    def auto_mask_sigma(self) -> float:
        """The auto-mask level in sigma (0: no auto-mask): --auto-mask, else the pipeline's default."""
        chosen = self.deconvolution.auto_mask
        return self.default_auto_mask if chosen is None else chosen

    @model_validator(mode="after")
    def _enough_channels(self) -> "ContinuumConfig":
        terms = self.deconvolution.fit_spectral_pol
        if terms is not None and terms > self.imaging.channels_out:
            raise ValueError(f"--fit-spectral-pol {terms} needs at least {terms} output channels "
                             f"(--channels-out is {self.imaging.channels_out})")
        return self

    # -- WSClean's -j and -mem, for a local cluster --
    threads: int | None = Field(None, ge=1, description="threads of the local cluster in all, as WSClean's -j: "
                                "that many single-threaded workers (or that many threads over cluster.n_workers)",
                                json_schema_extra={"cli": "-j"})
    mem: float | None = Field(None, gt=0, le=100, description="percent of this machine's memory the local cluster's "
                              "workers may use together, as WSClean's -mem (sets cluster.memory_limit)",
                              json_schema_extra={"cli": "--mem"})

    @model_validator(mode="after")
    def _threads_and_memory(self) -> "ContinuumConfig":
        from sdpflow.config.cluster import local_threads_and_memory

        local_threads_and_memory(self.cluster, self.threads, self.mem)
        return self


class IcalConfig(ContinuumConfig):
    """ICAL: continuum imaging with self-calibration between major cycles."""

    calibration: CalibrationConfig = CalibrationConfig()
    # self-calibration from a model cleaned into the noise would fit the noise: clean to 5 sigma
    # everywhere, then deeper only where the components are (as WSClean's -auto-mask 5)
    default_auto_mask: ClassVar[float] = 5.0
    deconvolution: DeconvolutionConfig = DeconvolutionConfig(auto_mask=default_auto_mask)

    @model_validator(mode="after")
    def _corrected_in_place(self) -> "IcalConfig":
        if self.calibration.write_corrected and (self.imaging.shift or self.imaging.channel_range):
            raise ValueError("--write-corrected writes the MS's own channels at its own phase centre: drop --shift "
                             "and --channel-range, or --write-corrected")
        return self

    @model_validator(mode="after")
    def _time_only_partition(self) -> "IcalConfig":
        if self.partition.frequency_chunks != 1 and set(self.calibration.context) & {"T", "G"}:
            raise ValueError("partition.frequency_chunks must be 1 when T or G gains are solved over all channels")
        return self
