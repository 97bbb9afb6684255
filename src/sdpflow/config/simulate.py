"""The ``simulate`` configuration: array, observation, sky, corruptions and presets."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from sdpflow.config.base import Section

#: Preset values; options given explicitly (CLI, YAML, --set) override them.
SIMULATE_PRESETS: dict[str, dict[str, Any]] = {
    # A few seconds to write: tests and quick looks.
    "small": {"stations": 16, "times": 10, "channels": 4, "n_bright": 3, "n_faint": 20, "image_npix": 256},
    # The ICAL demo: runs in about a minute on 2 cores.
    "demo": {"stations": 48, "times": 24, "channels": 6, "n_bright": 4, "n_faint": 60, "image_npix": 256,
             "noise_jy": 0.1},
    # The WSClean benchmark size: 128 stations x 60 times x 16 channels (7.8 million visibilities).
    "medium": {"stations": 128, "times": 60, "channels": 16, "n_bright": 5, "n_faint": 100, "image_npix": 512,
               "array_radius_m": 1500.0, "image_cell_arcsec": 40.0},
    # Full polarisation: 288 x 1 MHz channels from 800 MHz, 4 linear correlations, polarised sources
    # (p 5-30%, |RM| <= 20 rad/m2): 0.95 million visibilities; simulate and IQU imaging in well under a minute.
    "pol": {"stations": 24, "times": 12, "channels": 288, "freq_start_hz": 800e6, "freq_width_hz": 1e6,
            "n_bright": 4, "n_faint": 10, "field_radius_deg": 0.35, "image_npix": 256, "image_cell_arcsec": 12.0,
            "noise_jy": 0.1, "pol_fraction": (0.05, 0.3), "rm_radm2": (-20.0, 20.0)},
}


#: The most visibilities (baselines x times x channels) a simulation writes: 1000x the medium preset.
MAX_VISIBILITIES = 10**10


class SimulateConfig(Section):
    """A simulated LOW-like observation written as a MeasurementSet plus its truth."""

    preset: Optional[Literal["demo", "small", "medium", "pol"]] = Field(
        default=None, description="start from a preset (demo, small, medium, pol); other options override it",
        json_schema_extra={"cli": "--preset"})
    stations: int = Field(default=16, ge=2, description="number of stations", json_schema_extra={"cli": "--stations"})
    array_radius_m: float = Field(default=1000.0, gt=0, description="radius of the random core (m)")
    layout: Optional[str] = Field(
        default=None, description="station positions from a CSV (x_m,y_m,z_m or east_m,north_m) or an MS "
        "ANTENNA table, instead of a random core", json_schema_extra={"cli": "--layout"})
    times: int = Field(default=10, ge=1, description="number of integrations", json_schema_extra={"cli": "--times"})
    hour_angle_start_h: float = Field(default=-2.0, description="first hour angle of the phase centre (hours)")
    hour_angle_stop_h: float = Field(default=2.0, description="last hour angle of the phase centre (hours)")
    date: str = Field(default="2025-01-01", description="UTC date of the transit observed")
    channels: int = Field(default=4, ge=1, description="number of channels", json_schema_extra={"cli": "--channels"})
    freq_start_hz: float = Field(default=1.0e8, gt=0, description="first channel's frequency (Hz)",
                                 json_schema_extra={"cli": "--freq-start"})
    freq_width_hz: float = Field(default=1.0e6, gt=0, description="channel width and spacing (Hz)",
                                 json_schema_extra={"cli": "--freq-width"})
    ra_deg: float = Field(default=15.0, ge=0, lt=360, description="phase centre right ascension (deg, J2000)")
    dec_deg: float = Field(default=-45.0, ge=-90, le=90, description="phase centre declination (deg, J2000)")
    n_bright: int = Field(default=3, ge=0, description="bright sources (for self-calibration)")
    n_faint: int = Field(default=20, ge=0, description="faint sources, survey-like fluxes")
    bright_flux_jy: tuple[float, float] = Field(default=(1.0, 5.0), description="bright source flux range (Jy)")
    faint_flux_jy: tuple[float, float] = Field(default=(0.005, 0.2), description="faint source flux range (Jy)")
    field_radius_deg: float = Field(default=1.5, gt=0, description="sources lie within this distance of the centre (deg)")
    primary_beam: bool = Field(default=True, description="attenuate fluxes by a Gaussian station beam")
    station_diameter_m: float = Field(default=38.0, gt=0, description="station diameter for the beam (m)")
    phase_error_rad: float = Field(default=1.0, ge=0, description="RMS antenna phase error (rad)",
                                   json_schema_extra={"cli": "--phase-error"})
    amplitude_error: float = Field(default=0.1, ge=0, description="RMS fractional antenna amplitude error")
    gain_interval_s: Optional[float] = Field(default=None, gt=0,
                                             description="gain solution interval (s); default one integration")
    noise_jy: float = Field(default=0.5, ge=0, description="thermal noise per correlation, real and imaginary (Jy)",
                            json_schema_extra={"cli": "--noise"})
    feeds: Literal["linear", "circular"] = Field(
        default="linear", description="feed type: linear (XX,XY,YX,YY; CORR_TYPE 9-12) or circular (RR,RL,LR,LL; 5-8)",
        json_schema_extra={"cli": "--feeds"})
    all_correlations: bool = Field(
        default=False, description="write the four correlations (with cross hands), not only the parallel hands; "
        "implied by polarised sources or circular feeds", json_schema_extra={"cli": "--all-correlations"})
    pol_fraction: tuple[float, float] = Field(
        default=(0.0, 0.0), description="range of the sources' fractional linear polarisation p (0..1, uniform)")
    rm_radm2: tuple[float, float] = Field(
        default=(-20.0, 20.0), description="range of the sources' rotation measures (rad/m2, uniform); the "
        "polarisation angle is chi0 + RM lambda^2 with chi0 uniform in [0, 180) deg")
    slab_fraction: float = Field(
        default=0.0, ge=0, le=1, description="fraction of polarised sources that are Burn slabs (Faraday-thick)",
        json_schema_extra={"cli": "--slab-fraction"})
    slab_depth_radm2: tuple[float, float] = Field(
        default=(5.0, 20.0), description="range of the Burn slabs' full Faraday depth (rad/m2)")
    seed: int = Field(default=42, description="random seed of layout, sky, gains and noise",
                      json_schema_extra={"cli": "--seed"})
    image_npix: int = Field(default=256, ge=32, description="suggested image size (pixels) for imaging the result")
    image_cell_arcsec: float = Field(default=60.0, gt=0, description="suggested pixel size (arcsec)")

    @property
    def polarised(self) -> bool:
        """Whether the MS gets all four correlations (and the truth its polarisation columns)."""
        return self.all_correlations or self.feeds == "circular" or self.pol_fraction[1] > 0

    @model_validator(mode="after")
    def _valid_ranges(self) -> "SimulateConfig":
        for name in ("pol_fraction", "rm_radm2", "slab_depth_radm2"):
            low, high = getattr(self, name)
            if high < low:
                raise ValueError(f"{name}: the range ({low}, {high}) must be (low, high)")
        if not (0 <= self.pol_fraction[0] and self.pol_fraction[1] <= 1):
            raise ValueError("pol_fraction must lie in 0..1")
        return self

    @model_validator(mode="after")
    def _fits_a_machine(self) -> "SimulateConfig":
        visibilities = self.stations * (self.stations - 1) // 2 * self.times * self.channels
        if visibilities > MAX_VISIBILITIES:
            raise ValueError(f"stations {self.stations}, times {self.times} and channels {self.channels} make "
                             f"{visibilities:.3g} visibilities, more than the {MAX_VISIBILITIES:.0e} a simulation "
                             "writes: give smaller numbers")
        return self

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset"):
            preset = SIMULATE_PRESETS.get(str(data["preset"]))
            if preset is not None:
                data = {**preset, **data}
        return data
