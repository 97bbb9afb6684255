"""Stokes I catalogues (FITS, VOTable, CSV; units; column mapping) and ``polarimetry init``: islands
and components in typed, indexed result tables, loaded twice to the same rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import inspect

from sdpflow.config.polarimetry import PolarimetryConfig
from sdpflow.errors import DataError, InputError
from sdpflow.pipelines import resume_run, start_run
from sdpflow.polarimetry.catalogue import read_catalogue
from sdpflow.store import RunStore

INIT = "sdpflow.pipelines.polarimetry:POLARIMETRY_INIT"
RACS = PolarimetryConfig().columns.model_dump()


def _racs_table(n_islands: int = 30, seed: int = 2):
    """A RACS-like catalogue: islands of 1-3 Gaussians, Peak_flux in mJy/beam, sizes in arcsec."""
    import astropy.units as u
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_islands)
    source = np.repeat([f"RACS_1234-56_{k:04d}" for k in range(n_islands)], sizes)
    n = len(source)
    table = Table({"Source_ID": source, "Gaussian_ID": [f"{s}_g{k}" for k, s in enumerate(source)],
                   "RA": rng.uniform(10, 12, n), "Dec": rng.uniform(-40, -38, n),
                   "Peak_flux": rng.uniform(1, 100, n), "Total_flux": rng.uniform(1, 150, n),
                   "Maj": rng.uniform(15, 30, n), "Min": rng.uniform(10, 15, n), "PA": rng.uniform(0, 180, n)})
    for name, unit in (("RA", u.deg), ("Dec", u.deg), ("Peak_flux", u.mJy / u.beam), ("Total_flux", u.mJy),
                       ("Maj", u.arcsec), ("Min", u.arcsec), ("PA", u.deg)):
        table[name].unit = unit
    return table


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalogues")
    table = _racs_table()
    paths = {"fits": folder / "racs.fits", "votable": folder / "racs.xml", "csv": folder / "racs.csv"}
    table.write(paths["fits"])
    table.write(paths["votable"], format="votable")
    table.write(paths["csv"], format="ascii.csv")  # no units: RACS's mJy assumed for fluxes
    return table, paths


def test_fits_votable_and_csv_give_the_same_components_in_jy(catalogues):
    table, paths = catalogues
    read = {kind: read_catalogue(path, RACS, flux_unit="mJy") for kind, path in paths.items()}
    for kind, components in read.items():
        assert len(components) == len(table), kind
        np.testing.assert_allclose(components.peak_flux, np.asarray(table["Peak_flux"]) / 1e3, rtol=1e-6)
        np.testing.assert_allclose(components.maj, np.asarray(table["Maj"]), rtol=1e-6)
        assert list(components.component_id) == list(table["Gaussian_ID"])
        assert len(components.islands()) == 30
        assert np.all(np.isnan(components.truth_rm))
    islands = read["fits"].islands()
    assert [len(rows) for rows in islands.values()] == [int(np.sum(table["Source_ID"] == s)) for s in islands]


def test_bad_catalogues_are_named(catalogues, tmp_path):
    table, paths = catalogues
    with pytest.raises(DataError, match="no column Peak_flux_x"):
        read_catalogue(paths["fits"], {**RACS, "peak_flux": "Peak_flux_x"})
    duplicated = table.copy()
    duplicated["Gaussian_ID"][3] = duplicated["Gaussian_ID"][2]
    duplicated.write(tmp_path / "dup.fits")
    with pytest.raises(DataError, match="appears 2 times"):
        read_catalogue(tmp_path / "dup.fits", RACS)
    wrong = table.copy()
    wrong["Maj"].unit = "Jy"
    wrong.write(tmp_path / "unit.fits")
    with pytest.raises(DataError, match="does not convert to arcsec"):
        read_catalogue(tmp_path / "unit.fits", RACS)
    (tmp_path / "broken.fits").write_bytes(b"SIMPLE  = T" + b"\0" * 100)
    with pytest.raises(DataError, match="cannot be read"):
        read_catalogue(tmp_path / "broken.fits", RACS)
    (tmp_path / "racs.dat").write_text("x")
    with pytest.raises(DataError, match="unknown format"):
        read_catalogue(tmp_path / "racs.dat", RACS)


def test_init_loads_typed_indexed_tables_twice_to_the_same_rows(catalogues, db_url, tmp_path):
    table, paths = catalogues
    store = RunStore(db_url)
    config = PolarimetryConfig(catalogue=str(paths["votable"]))
    result = start_run(INIT, config, tmp_path / "init", store=store, cluster_spec="local:1")
    islands = store.result_rows(result.run_id, "pol_islands")
    components = store.result_rows(result.run_id, "pol_components")
    assert len(islands) == 30 and len(components) == len(table)
    first = {row["component_id"]: row for row in components}
    row = first[str(table["Gaussian_ID"][5])]
    assert row["source_id"] == str(table["Source_ID"][5])
    assert row["peak_flux"] == pytest.approx(float(table["Peak_flux"][5]) / 1e3, rel=1e-6)
    assert isinstance(row["maj"], float) and row["truth_rm"] is None
    assert sum(island["n_components"] for island in islands) == len(table)
    with store.engine.connect() as connection:
        indexed = {tuple(index["column_names"]) for index in inspect(connection).get_indexes("result_pol_components")}
        types = {column["name"]: str(column["type"]) for column in inspect(connection).get_columns("result_pol_components")}
    assert ("run_id", "component_id") in indexed and ("run_id", "source_id") in indexed
    assert types["ra"].upper() in ("FLOAT", "DOUBLE PRECISION") and types["component_id"].upper() == "TEXT"

    again = resume_run(result.run_id, store=store, cluster_spec="local:1", from_stage="islands")
    assert again.results["islands"].ran == 30
    assert store.result_rows(result.run_id, "pol_components") == components
    assert store.result_rows(result.run_id, "pol_islands") == islands


def test_init_command_line(catalogues, tmp_path):
    _, paths = catalogues
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = subprocess.run([sys.executable, "-m", "sdpflow", "--cluster", "local:1", "polarimetry", "init",
                           str(paths["csv"]), "--db", db, "--out", str(tmp_path / "init")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded 30 islands and" in " ".join(done.stdout.split())
    missing = subprocess.run([sys.executable, "-m", "sdpflow", "polarimetry", "init", str(tmp_path / "none.fits"),
                              "--db", db, "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_run_without_cubes_points_to_init(catalogues, tmp_path):
    _, paths = catalogues
    with pytest.raises(InputError, match="polarimetry init"):
        start_run("polarimetry", PolarimetryConfig(catalogue=str(paths["fits"])), tmp_path / "run",
                  store=RunStore(f"sqlite:///{tmp_path / 'runs.db'}"), cluster_spec="local:1")
