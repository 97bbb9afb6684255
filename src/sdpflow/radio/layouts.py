"""Array layouts: a LOW-like centrally condensed core, or stations read from an MS or a CSV file.

Positions are ITRF geocentric (x, y, z) in metres; local positions are (east, north, up) in
metres about a site given as (longitude, latitude) in radians and height in metres.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sdpflow.errors import DataError
from sdpflow.radio.datamodels import ArrayConfiguration

#: The SKA-LOW site (Inyarrimanha Ilgari Bundara): longitude, latitude (radians), height (metres).
LOW_SITE = (np.radians(116.7644482), np.radians(-26.82472208), 377.8)


def site_itrf(site: tuple[float, float, float]) -> np.ndarray:
    """Geocentric ITRF (x, y, z) in metres of a geodetic (lon, lat radians, height metres) site (WGS84)."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    lon, lat, height = site
    location = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, height * u.m)
    return np.array([location.x.to_value(u.m), location.y.to_value(u.m), location.z.to_value(u.m)])


def enu_axes(lon: float, lat: float) -> np.ndarray:
    """Rows: the east, north and up unit vectors in ITRF at (lon, lat) radians."""
    sin_lon, cos_lon, sin_lat, cos_lat = np.sin(lon), np.cos(lon), np.sin(lat), np.cos(lat)
    return np.array([
        [-sin_lon, cos_lon, 0.0],
        [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
        [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
    ])


def enu_to_itrf(enu: np.ndarray, site: tuple[float, float, float] = LOW_SITE) -> np.ndarray:
    """ITRF positions [n, 3] (metres) of local (east, north, up) offsets [n, 3] (metres) about a site."""
    return site_itrf(site)[None, :] + np.asarray(enu) @ enu_axes(site[0], site[1])


def itrf_to_enu(xyz: np.ndarray, site: tuple[float, float, float] = LOW_SITE) -> np.ndarray:
    """Local (east, north, up) offsets [n, 3] (metres) of ITRF positions [n, 3] about a site."""
    return (np.asarray(xyz) - site_itrf(site)[None, :]) @ enu_axes(site[0], site[1]).T


def low_like_layout(n_stations: int, *, radius_m: float = 1000.0, min_separation_m: float = 40.0,
                    seed: int = 0) -> np.ndarray:
    """East, north, up offsets [n_stations, 3] in metres of a centrally condensed random core.

    Station radii are drawn with surface density ∝ 1/r (most stations near the centre) inside
    ``radius_m``, keeping at least ``min_separation_m`` between stations (relaxed when the
    disc is too crowded). The same seed gives the same layout.
    """
    if n_stations < 2:
        raise ValueError("an array needs at least 2 stations")
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    separation = min_separation_m
    attempts = 0
    while len(positions) < n_stations:
        radius = radius_m * rng.random() ** 1.0
        angle = 2 * np.pi * rng.random()
        candidate = np.array([radius * np.cos(angle), radius * np.sin(angle)])
        if not positions or np.min(np.hypot(*(np.array(positions) - candidate).T)) >= separation:
            positions.append(candidate)
            attempts = 0
        else:
            attempts += 1
            if attempts > 200:
                separation *= 0.9
                attempts = 0
    east_north = np.array(positions)
    return np.column_stack([east_north, np.zeros(n_stations)])


def low_like_configuration(n_stations: int, *, radius_m: float = 1000.0, seed: int = 0,
                           site: tuple[float, float, float] = LOW_SITE, diameter_m: float = 38.0) -> ArrayConfiguration:
    """A LOW-like core (:func:`low_like_layout`) placed at a site, as an ArrayConfiguration."""
    enu = low_like_layout(n_stations, radius_m=radius_m, min_separation_m=diameter_m + 2.0, seed=seed)
    names = [f"S{index:03d}" for index in range(n_stations)]
    return ArrayConfiguration(names=names, positions=enu_to_itrf(enu, site), diameter=diameter_m)


def configuration_from_csv(path: str | Path, *, site: tuple[float, float, float] = LOW_SITE,
                           diameter_m: float = 38.0) -> ArrayConfiguration:
    """Stations from a CSV with columns ``x_m,y_m,z_m`` (ITRF) or ``east_m,north_m,up_m`` (about ``site``).

    An optional ``name`` column names the stations; an optional ``diameter_m`` column sets the diameter.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"layout file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"layout file {path} is not a CSV text file ({error.__class__.__name__}): "
                        "give columns x_m,y_m,z_m or east_m,north_m[,up_m]") from None
    if len(rows) < 2:
        raise DataError(f"layout file {path} must list at least 2 stations")
    header = set(rows[0])
    try:
        if {"x_m", "y_m", "z_m"} <= header:
            xyz = np.array([[float(r["x_m"]), float(r["y_m"]), float(r["z_m"])] for r in rows])
        elif {"east_m", "north_m"} <= header:
            enu = np.array([[float(r["east_m"]), float(r["north_m"]), float(r.get("up_m") or 0.0)] for r in rows])
            xyz = enu_to_itrf(enu, site)
        else:
            raise DataError(f"layout file {path} needs columns x_m,y_m,z_m or east_m,north_m[,up_m]")
        if "diameter_m" in header:
            diameter_m = float(rows[0]["diameter_m"])
    except ValueError:
        raise DataError(f"layout file {path} has a position that is not a number") from None
    if not np.isfinite(xyz).all():
        raise DataError(f"layout file {path} has a position that is NaN or infinite")
    names = [r.get("name") or f"S{index:03d}" for index, r in enumerate(rows)]
    return ArrayConfiguration(names=names, positions=xyz, diameter=diameter_m)


def configuration_from_ms(path: str | Path) -> ArrayConfiguration:
    """Stations of a MeasurementSet's ANTENNA table."""
    from sdpflow.radio.ms import read_ms_metadata

    metadata = read_ms_metadata(path)
    return ArrayConfiguration(names=list(metadata.antenna_names), positions=metadata.antenna_positions,
                              diameter=float(np.median(metadata.antenna_diameters)), telescope=metadata.telescope)
