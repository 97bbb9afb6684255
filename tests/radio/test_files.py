"""FITS images (WSClean's layout, astropy-readable) and HDF5 visibilities and gain tables."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from radio_testdata import PHASE_CENTRE, observation

from sdpflow.errors import DataError
from sdpflow.provenance import provenance_record, record_digest
from sdpflow.radio.datamodels import GainTable
from sdpflow.radio.fits import read_fits_image, write_fits_image
from sdpflow.radio.fits import read_provenance as read_fits_provenance
from sdpflow.radio.hdf5 import (
    read_gaintable_hdf5,
    read_provenance,
    read_visibility_hdf5,
    write_gaintable_hdf5,
    write_visibility_hdf5,
)


def test_fits_header_follows_wsclean_and_round_trips(tmp_path):
    cell = np.radians(20 / 3600)
    data = np.random.default_rng(0).normal(size=(2, 1, 64, 96))
    beam = (np.radians(60 / 3600), np.radians(40 / 3600), np.radians(25.0))
    record = provenance_record(config_hash="sha256:abc")
    path = write_fits_image(tmp_path / "img.fits", data, phase_centre=PHASE_CENTRE, cell_rad=cell,
                            frequency=[1e8, 1.1e8], beam=beam, history=["made by a test"], provenance=record)
    with fits.open(path) as hdus:
        header = hdus[0].header
        assert hdus[0].data.shape == (1, 2, 64, 96)  # [stokes, freq, y, x] on disk
    assert (header["CTYPE1"], header["CTYPE2"], header["CTYPE3"], header["CTYPE4"]) == (
        "RA---SIN", "DEC--SIN", "FREQ", "STOKES")
    assert header["CDELT1"] == pytest.approx(-20 / 3600) and header["CDELT2"] == pytest.approx(20 / 3600)
    assert (header["CRPIX1"], header["CRPIX2"]) == (49, 33)
    assert header["BMAJ"] == pytest.approx(60 / 3600) and header["BPA"] == pytest.approx(25.0)
    history = "".join(str(card) for card in header["HISTORY"])
    assert "made by a test" in history and "sha256" not in history  # the record is in its own extension
    assert read_fits_provenance(path) == record and header["SDPPROV"] == record_digest(record)
    centre = WCS(header).celestial.pixel_to_world(48, 32)
    assert centre.ra.deg == pytest.approx(15.0) and centre.dec.deg == pytest.approx(-45.0)
    east = WCS(header).celestial.pixel_to_world(47, 32)
    assert east.ra.deg > centre.ra.deg  # RA increases to the left
    image = read_fits_image(path)
    assert np.allclose(image.data, data.astype(np.float32))
    assert image.beam == pytest.approx(beam)
    assert np.allclose(image.frequency, [1e8, 1.1e8])
    assert image.cell_rad == pytest.approx(cell)


def test_fits_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="nothing.fits"):
        read_fits_image(tmp_path / "nothing.fits")


def test_hdf5_visibility_and_gaintable_round_trip(tmp_path):
    vis = observation(n_stations=6, n_times=3, frequency=(1e8, 1.1e8), seed=13)
    vis.vis[...] = np.random.default_rng(1).normal(size=vis.vis.shape)
    vis.flag[::7] = True
    record = provenance_record(config_hash="sha256:def")
    back = read_visibility_hdf5(write_visibility_hdf5(tmp_path / "vis.h5", vis, provenance=record))
    for name in ("uvw", "time", "interval", "antenna1", "antenna2", "frequency", "vis", "weight", "flag"):
        assert np.array_equal(getattr(back, name), getattr(vis, name)), name
    assert back.phase_centre == vis.phase_centre and back.configuration.names == vis.configuration.names
    assert read_provenance(tmp_path / "vis.h5")["config_hash"] == "sha256:def"

    shape = (3, 6, 1, 1)
    table = GainTable(gain=np.exp(1j * np.arange(18.0)).reshape(shape), weight=np.ones(shape),
                      time=vis.unique_times(), interval=np.full(3, 10.0), frequency=np.array([1.05e8]), mode="G")
    again = read_gaintable_hdf5(write_gaintable_hdf5(tmp_path / "g.h5", table, provenance=record))
    assert np.array_equal(again.gain, table.gain) and again.mode == "G" and again.receptors == ("I",)
    with pytest.raises(DataError, match="has no /gaintable"):
        read_gaintable_hdf5(tmp_path / "vis.h5")
