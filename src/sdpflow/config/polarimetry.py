"""The polarimetry pipeline (``sdpflow run polarimetry``, ``sdpflow polarimetry init``).

Inputs are Stokes I, Q and U cubes (an imaging run's ``restored-I/Q/U.fits`` in ``images``, or
three cubes named one by one) and a Stokes I catalogue of islands and components, whose column
names are mapped in ``columns`` (RACS-style by default). Names of the RM synthesis and RM-CLEAN
options follow RM-Tools (``n_samples``, ``poly_ord``, ``cutoff``, ``gain``, ``max_iter``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig


class CatalogueColumns(Section):
    """Which columns of the Stokes I catalogue hold what. Positions in degrees, sizes in arcsec,
    angles in degrees, unless the column carries a unit (FITS, VOTable). None: the catalogue has
    no such column (no source id: each row is its own island; no component id: the row number)."""

    source_id: str | None = Field("Source_ID", description="island (source) id; components sharing it form an island")
    component_id: str | None = Field("Gaussian_ID", description="component id, unique in the catalogue")
    ra: str = Field("RA", description="right ascension of the component")
    dec: str = Field("Dec", description="declination of the component")
    peak_flux: str | None = Field("Peak_flux", description="peak Stokes I flux density")
    total_flux: str | None = Field("Total_flux", description="integrated Stokes I flux density")
    maj: str | None = Field("Maj", description="major axis FWHM of the component")
    min: str | None = Field("Min", description="minor axis FWHM of the component")
    pa: str | None = Field("PA", description="position angle of the major axis, east of north")
    flux_unit: Literal["Jy", "mJy"] = Field("mJy", description="unit of the flux columns when they carry none "
                                            "(RACS catalogues give mJy)")
    truth_rm: str | None = Field(None, description="true rotation measure (rad/m²), for simulations: compared in the "
                                 "summary and the report")
    truth_fracpol: str | None = Field(None, description="true fractional polarisation (0-1), for simulations")
    truth_polangle: str | None = Field(None, description="true intrinsic polarisation angle (deg), for simulations")


class PolarimetryConfig(Section):
    """Cutouts, spectra, RM synthesis and RM-CLEAN per component, and an RMTable catalogue."""

    images: str | None = Field(None, description="folder of an imaging run with restored-I.fits, restored-Q.fits "
                               "and restored-U.fits (run continuum --pol IQU --channels-out N)",
                               json_schema_extra={"cli": "--images"})
    i_cube: str | None = Field(None, description="Stokes I cube (FITS with a FREQ axis); instead of images",
                               json_schema_extra={"cli": "--i-cube"})
    q_cube: str | None = Field(None, description="Stokes Q cube", json_schema_extra={"cli": "--q-cube"})
    u_cube: str | None = Field(None, description="Stokes U cube", json_schema_extra={"cli": "--u-cube"})
    catalogue: str | None = Field(None, description="Stokes I catalogue of islands and components: FITS, VOTable "
                                  "or CSV", json_schema_extra={"cli": "--catalogue"})
    columns: CatalogueColumns = CatalogueColumns()
    cutout_padding_beams: float = Field(3.0, gt=0, le=20, description="cutout padding around an island's components, "
                                        "in units of the cube's largest BMAJ")
    annulus_beams: tuple[float, float] = Field((1.5, 5.0), description="inner and outer radius of the background and "
                                               "noise annulus, in BMAJ (clipped to the cutout)")
    flag_sigma: float = Field(5.0, gt=0, description="a channel is flagged where the noise of any Stokes parameter "
                              "lies this many robust σ from its median over channels")
    min_channels: int = Field(8, ge=3, description="fewest unflagged channels a component's spectrum may keep; "
                              "fewer fail its island")
    poly_ord: int = Field(3, ge=0, le=5, description="highest order of the Stokes I model (log-log polynomial, "
                          "order chosen by AIC)")
    n_samples: float = Field(10.0, gt=1, description="samples across the RMSF FWHM (dφ = FWHM / n_samples)")
    phi_max: float | None = Field(None, gt=0, description="largest |Faraday depth| (rad/m²); default "
                                  "max(√3/δλ²_min, 10 FWHM)")
    cutoff: float = Field(3.0, gt=0, description="RM-CLEAN stops at cutoff × the FDF's theoretical noise")
    gain: float = Field(0.1, gt=0, le=1, description="RM-CLEAN loop gain")
    max_iter: int = Field(1000, ge=0, description="RM-CLEAN iterations at most")
    snr_threshold: float = Field(8.0, gt=0, description="snr_flag is set below this polarised signal-to-noise")
    complexity_fwhm: float = Field(0.5, gt=0, description="complex_flag is set where the second moment of the clean "
                                   "components of at least 2σ exceeds this fraction of the RMSF FWHM")
    rmsynth3d: bool = Field(False, description="also RM synthesis of the whole Q and U cubes, in row blocks over "
                            "the workers: peak_pi.fits and peak_rm.fits maps", json_schema_extra={"cli": "--rmsynth3d"})
    rmsynth3d_rows: int = Field(32, ge=1, description="cube rows per rmsynth3d item")
    max_failed_fraction: float = Field(0.1, ge=0, le=1, description="fraction of islands or components that may fail "
                                       "(each recorded with its reason) before a stage fails",
                                       json_schema_extra={"cli": "--max-failed-fraction"})
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _one_kind_of_cubes(self) -> "PolarimetryConfig":
        named = [self.i_cube, self.q_cube, self.u_cube]
        if self.images is not None and any(named):
            raise ValueError("give either images (an imaging run's folder) or i_cube, q_cube and u_cube, not both")
        if any(named) and not all(named):
            raise ValueError("give all three of i_cube, q_cube and u_cube")
        low, high = self.annulus_beams
        if not 0 < low < high:
            raise ValueError("annulus_beams must be two radii 0 < inner < outer")
        return self

    @property
    def has_cubes(self) -> bool:
        return self.images is not None or self.i_cube is not None
