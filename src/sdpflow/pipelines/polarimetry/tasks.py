"""What the polarimetry pipeline's items do on the workers: load an island, cut it out, measure its
spectra, and RM synthesis / RM-CLEAN of a batch of components.

Each function takes :class:`~sdpflow.engine.fanout.ItemContext` objects whose payloads are plain
values, writes its files through ``item.output`` and returns its result rows (column names in
lower case, as result tables want them). Run-folder layout:

- ``cutouts/{island}.fits`` the island's I, Q, U cubelet (:func:`sdpflow.polarimetry.cubes.write_cubelet`);
- ``rmsynth3d/rows-{y0}.npz`` peak PI and peak RM of a block of cube rows (``peak_pi``, ``peak_rm`` [rows, nx]);
- ``spectra/{island}.npz`` its components' spectra: ``component_id`` [n], ``frequency_hz`` [chan],
  ``values``, ``noise`` [n, 3, chan] (Jy/beam; I, Q, U), ``flagged`` [n, chan].
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sdpflow.errors import DataError
from sdpflow.polarimetry.cubes import island_box, open_cube, read_cubelet, write_cubelet
from sdpflow.polarimetry.spectra import extract_spectra


def cutout_path(stem: str) -> str:
    return f"cutouts/{stem}.fits"


def spectra_path(stem: str) -> str:
    return f"spectra/{stem}.npz"


# -- islands and components into the run database ---------------------------------------------
def load_island(item) -> dict[str, Any]:
    """An island's row: its id, components, flux-weighted centre... (the payload holds its components)."""
    source_id, components = item.payload
    ra = np.array([c["ra"] for c in components])
    dec = np.array([c["dec"] for c in components])
    flux = np.array([c["total_flux"] if c["total_flux"] is not None else np.nan for c in components])
    return {"source_id": source_id, "n_components": len(components), "ra": float(np.mean(ra)),
            "dec": float(np.mean(dec)), "total_flux": float(np.nansum(flux)) if np.isfinite(flux).any() else None}


def load_components(item) -> list[dict[str, Any]]:
    """The island's components' rows, as the catalogue gives them (Jy, deg, arcsec)."""
    _, components = item.payload
    return [dict(component) for component in components]


# -- cutouts ------------------------------------------------------------------------------------
def cut_island(item) -> dict[str, Any]:
    """Cut the island out of the I, Q, U cubes (each opened once per worker) into one cubelet."""
    source_id, stem, ra, dec, maj, settings = item.payload
    cubes = [open_cube(path) for path in settings["cubes"]]
    box = island_box(cubes[0], np.asarray(ra), np.asarray(dec), np.asarray(maj, dtype=float),
                     settings["padding_beams"])
    write_cubelet(item.output(cutout_path(stem)), cubes, box)
    y0, y1, x0, x1 = box
    return {"source_id": source_id, "x0": x0, "y0": y0, "nx": x1 - x0, "ny": y1 - y0,
            "n_chan": int(cubes[0].data.shape[0])}


# -- spectra ------------------------------------------------------------------------------------
def measure_spectra(item) -> list[dict[str, Any]]:
    """The spectra of an island's components from its cubelet; fails the island when a component
    keeps fewer than ``min_channels`` channels."""
    source_id, stem, component_ids, ra, dec, settings = item.payload
    cubelet = read_cubelet(item.product(cutout_path(stem)))
    x, y = cubelet.celestial.world_to_pixel_values(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
    bmaj_pixels = float(np.degrees(cubelet.beams[:, 0].max()) / cubelet.pixel_deg)
    spectra = extract_spectra(data=cubelet.data, pixel_xy=np.stack([x, y], axis=1), bmaj_pixels=bmaj_pixels,
                              annulus=tuple(settings["annulus_beams"]), flag_sigma=settings["flag_sigma"])
    kept = (~spectra.flagged).sum(axis=1)
    short = np.flatnonzero(kept < settings["min_channels"])
    if short.size:
        raise DataError(f"island {source_id}: component {component_ids[short[0]]} keeps {kept[short[0]]} of "
                        f"{spectra.flagged.shape[1]} channels (NaN or flagged), fewer than min_channels "
                        f"{settings['min_channels']}")
    with open(item.output(spectra_path(stem)), "wb") as stream:
        np.savez(stream, component_id=np.asarray(component_ids, dtype=str), frequency_hz=cubelet.frequency_hz,
                 values=spectra.values, noise=spectra.noise, flagged=spectra.flagged)
    rows = []
    for c, component_id in enumerate(component_ids):
        median_noise = np.nanmedian(np.where(spectra.flagged[c], np.nan, spectra.noise[c]), axis=1)
        rows.append({"source_id": source_id, "component_id": component_id, "peak_y": int(spectra.peak_pixel[c, 0]),
                     "peak_x": int(spectra.peak_pixel[c, 1]), "n_flagged": int(spectra.flagged[c].sum()),
                     "annulus_pixels": int(spectra.annulus_pixels[c]), "noise_i": float(median_noise[0]),
                     "noise_q": float(median_noise[1]), "noise_u": float(median_noise[2])})
    return rows


# -- RM synthesis and RM-CLEAN ------------------------------------------------------------------
@lru_cache(maxsize=256)
def _island_spectra(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def gather_spectra(items) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency_hz [chan], values [n, 3, chan], noise [n, 3, chan]) of a batch of component items
    (payload: island file stem, the component's row in it)."""
    values, noise, frequency = [], [], None
    for item in items:
        stem, row = item.payload[:2]
        path = Path(item.product(spectra_path(stem)))
        stored = _island_spectra(str(path), path.stat().st_mtime_ns)
        if frequency is None:
            frequency = stored["frequency_hz"]
        elif stored["frequency_hz"].shape != frequency.shape or not np.allclose(stored["frequency_hz"], frequency):
            raise DataError(f"spectra of {stem} have other channels than the rest of the batch")
        values.append(stored["values"][row])
        noise.append(stored["noise"][row])
    return frequency, np.stack(values), np.stack(noise)


@lru_cache(maxsize=8)
def _grid(frequency: tuple[float, ...], n_samples: float, phi_max: float | None):
    from sdpflow.polarimetry.rmsynth import faraday_grid

    return faraday_grid(frequency_hz=np.asarray(frequency), n_samples=n_samples, phi_max_radm2=phi_max)


def measure_batch(items, *, clean: bool) -> list[dict[str, Any]]:
    """RM synthesis (and RM-CLEAN with ``clean``) of a batch of components, one row each."""
    from sdpflow.polarimetry.rmtable import as_rows, measure_components

    settings = items[0].payload[2]
    frequency, values, noise = gather_spectra(items)
    grid = _grid(tuple(frequency.tolist()), settings["n_samples"], settings["phi_max"])
    columns = measure_components(
        frequency_hz=frequency, stokes_i=values[:, 0], stokes_q=values[:, 1], stokes_u=values[:, 2],
        stokes_i_err=noise[:, 0], stokes_q_err=noise[:, 1], stokes_u_err=noise[:, 2], grid=grid,
        max_order=settings["poly_ord"], clean=clean, cutoff_sigma=settings["cutoff"], gain=settings["gain"],
        max_iter=settings["max_iter"])
    rows = as_rows(columns)
    return [{"component_id": item.key, **{name.lower(): value for name, value in row.items()}}
            for item, row in zip(items, rows)]


def rmsynth_batch(items) -> list[dict[str, Any]]:
    """RM synthesis of a batch: the dirty FDF's peak, one row per component."""
    return measure_batch(items, clean=False)


def rmclean_batch(items) -> list[dict[str, Any]]:
    """RM synthesis and RM-CLEAN of a batch: the clean FDF's peak, one row per component."""
    return measure_batch(items, clean=True)


# -- RM synthesis of the whole cubes ------------------------------------------------------------
@lru_cache(maxsize=4)
def _channel_noise(q_path: str, u_path: str, versions: tuple[str, ...]) -> np.ndarray:
    """The cubes' robust noise per channel, computed once per worker."""
    from sdpflow.polarimetry.rmsynth3d import channel_noise

    return channel_noise(stokes_q=open_cube(q_path).data, stokes_u=open_cube(u_path).data)


def rmsynth3d_rows(item) -> dict[str, Any]:
    """Peak polarised intensity and its Faraday depth for the cube rows y0 … y1 − 1."""
    from sdpflow.polarimetry.rmsynth3d import peak_maps

    y0, y1, settings = item.payload
    _, q_path, u_path = settings["cubes"]
    noise = _channel_noise(q_path, u_path, tuple(settings["cube_versions"]))
    q, u = open_cube(q_path), open_cube(u_path)
    grid = _grid(tuple(q.frequency_hz.tolist()), settings["n_samples"], settings["phi_max"])
    peak_pi, peak_rm = peak_maps(stokes_q=q.data[:, y0:y1], stokes_u=u.data[:, y0:y1], noise=noise, grid=grid)
    with open(item.output(f"rmsynth3d/rows-{y0:05d}.npz"), "wb") as stream:
        np.savez(stream, peak_pi=peak_pi, peak_rm=peak_rm)
    return None
