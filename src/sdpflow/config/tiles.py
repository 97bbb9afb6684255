"""The web-tiles pipeline (``sdpflow run tiles``): keys named as in the PDG visualisation workflow.

Distances are in the units of the tile matrix set's CRS (degrees for WGS1984Quad, metres for
WebMercatorQuad). The output folder comes from ``--out``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig

#: The statistics a tile can hold, and how a parent pixel combines its 2×2 children.
STATISTIC_REDUCERS = {"polygon_count": "sum", "coverage": "mean"}


def ordered_percentiles(value: tuple[float, float]) -> tuple[float, float]:
    """``value`` when it is two percentiles ``0 <= low < high <= 100``; else ValueError."""
    if not 0 <= value[0] < value[1] <= 100:
        raise ValueError("give two percentiles 0 <= low < high <= 100")
    return value


def ordered_range(value: tuple[float, float] | None) -> tuple[float, float] | None:
    """``value`` when it is None or two values ``low < high``; else ValueError."""
    if value is not None and not value[0] < value[1]:
        raise ValueError("give two values low < high")
    return value


class StatisticConfig(Section):
    """One band of the GeoTIFFs and one layer of web tiles."""

    name: Literal["polygon_count", "coverage"] = Field(
        description="polygon_count: polygons whose centroid lies in the pixel (parents sum); "
        "coverage: fraction of the pixel's area inside polygons (parents average)")
    palette: list[str] | str = Field(
        default_factory=lambda: ["#fde725", "#21918c", "#440154"],
        description="colours from low to high (names or #rrggbb[aa]), or a matplotlib colormap name")
    nodata_colour: str = Field("#ffffff00", description="colour of pixels without polygons (transparent by default)")
    value_range: tuple[float, float] | None = Field(
        None, description="values mapped to the palette's ends at every zoom; default: per zoom, the percentiles "
        "of that zoom's positive pixel values (a count's range grows as pixels grow)")
    percentiles: tuple[float, float] = Field(
        (2.0, 98.0), description="the default colour range's ends, as percentiles of a zoom's positive pixel values")

    @field_validator("percentiles")
    @classmethod
    def _percentiles_ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return ordered_percentiles(value)

    @field_validator("value_range")
    @classmethod
    def _range_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        return ordered_range(value)


class TilesConfig(Section):
    """Vector polygons to GeoTIFF tiles, web tiles (PNG), TileJSON/WMTS metadata and a Leaflet viewer."""

    inputs: list[str] = Field(default_factory=list, description="vector files: GeoPackage, Shapefile, GeoJSON, "
                              "FlatGeobuf or GeoParquet, any CRS", json_schema_extra={"cli": "--input"})
    raster: str | None = Field(None, description="instead of vector inputs: one image to tile, a FITS image with a "
                               "celestial WCS (RA/Dec shown as longitude −RA, latitude Dec: east to the left, as on the "
                               "sky) or a GeoTIFF in any CRS", json_schema_extra={"cli": "--raster"})
    raster_band: int = Field(1, ge=1, description="raster: the GeoTIFF band, or the FITS plane (1: the first channel "
                             "and Stokes plane; planes counted along the axes after RA and Dec)",
                             json_schema_extra={"cli": "--raster-band"})
    raster_resampling: Literal["nearest", "bilinear"] = Field(
        "bilinear", description="raster: how a z_max tile pixel samples the image at its centre",
        json_schema_extra={"cli": "--raster-resampling"})
    raster_stretch: Literal["linear", "asinh"] = Field(
        "asinh", description="raster: the colour scale between the range's ends (asinh: faint emission visible beside "
        "bright sources)", json_schema_extra={"cli": "--raster-stretch"})
    raster_percentiles: tuple[float, float] = Field(
        (0.5, 99.9), description="raster: the colour range's ends as percentiles of the image's finite pixels",
        json_schema_extra={"cli": "--raster-percentiles"})
    raster_value_range: tuple[float, float] | None = Field(
        None, description="raster: the colour range's ends in image units (overrides raster_percentiles)",
        json_schema_extra={"cli": "--raster-value-range"})
    raster_palette: list[str] | str = Field("inferno", description="raster: colours from low to high, or a "
                                            "matplotlib colormap name; blank pixels are transparent")
    tms_id: str = Field("WGS1984Quad", description="morecantile tile matrix set, e.g. WGS1984Quad or WebMercatorQuad",
                        json_schema_extra={"cli": "--tms-id"})
    z_range: tuple[int, int] = Field((0, 12), description="lowest and highest zoom level",
                                     json_schema_extra={"cli": "--z-range"})
    tile_size: int = Field(256, ge=16, le=4096, description="pixels along a tile's side",
                           json_schema_extra={"cli": "--tile-size"})
    simplify_tolerance: float = Field(0.0, ge=0, description="Douglas-Peucker tolerance in TMS CRS units (0: none)",
                                      json_schema_extra={"cli": "--simplify-tolerance"})
    statistics: list[StatisticConfig] = Field(
        default_factory=lambda: [
            StatisticConfig(name="coverage", palette="viridis"),
            StatisticConfig(name="polygon_count", palette=["#d9f0a3", "#41ab5d", "#004529"]),
        ],
        description="bands of the GeoTIFFs and layers of web tiles")
    deduplicate: Literal["none", "footprints", "neighbor"] = Field(
        "none", description="where input files overlap: none (polygons counted once per file); footprints (a polygon "
        "whose centroid lies in the footprint, the convex hull of the centroids, of an earlier file with polygons in the "
        "same tile is dropped); neighbor (a polygon is dropped when an earlier file has one with its centroid within "
        "deduplicate_centroid_tolerance overlapping it by deduplicate_overlap_tolerance of the smaller area)",
        json_schema_extra={"cli": "--deduplicate"})
    deduplicate_centroid_tolerance: float | None = Field(
        None, ge=0, description="neighbor: centroid distance in TMS CRS units (default: a thousandth of a z_max pixel)")
    deduplicate_overlap_tolerance: float = Field(
        0.5, gt=0, le=1, description="neighbor: shared area, as a fraction of the smaller polygon, that makes a duplicate")
    max_failed_fraction: float = Field(0.0, ge=0, le=1, description="fraction of input files or tiles that may fail "
                                       "(each listed with its error) before a stage fails",
                                       json_schema_extra={"cli": "--max-failed-fraction"})
    cluster: ClusterConfig = ClusterConfig()

    @field_validator("z_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1] <= 24:
            raise ValueError("z_range must be two zoom levels 0 <= z_min <= z_max <= 24")
        return value

    @model_validator(mode="after")
    def _distinct_statistics(self) -> "TilesConfig":
        names = [statistic.name for statistic in self.statistics]
        if not names or len(set(names)) != len(names):
            raise ValueError("statistics must name each of polygon_count, coverage at most once, and at least one")
        return self

    @field_validator("raster_percentiles")
    @classmethod
    def _raster_percentiles_ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return ordered_percentiles(value)

    @field_validator("raster_value_range")
    @classmethod
    def _raster_range_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        return ordered_range(value)

    @model_validator(mode="after")
    def _one_kind_of_input(self) -> "TilesConfig":
        if self.raster is not None and self.inputs:
            raise ValueError("give either vector inputs (--input) or one image (--raster), not both")
        return self

    @property
    def statistic_names(self) -> list[str]:
        return [statistic.name for statistic in self.statistics]

    @property
    def reducers(self) -> list[str]:
        return [STATISTIC_REDUCERS[name] for name in self.statistic_names]
