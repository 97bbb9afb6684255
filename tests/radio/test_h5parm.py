"""H5parm gain tables: ours read by LoSoTo, LoSoTo's (DP3's layout) read by ours, and bad tables refused."""

from __future__ import annotations

import numpy as np
import pytest
from losoto.h5parm import h5parm

from sdpflow.errors import DataError
from sdpflow.radio.datamodels import GainTable
from sdpflow.radio.h5parm import read_h5parm, solutions_for_ms, write_h5parm

NAMES = ["S000", "S001", "S002", "S003", "S004"]


def gains(n_time=4, n_chan=1, seed=0) -> GainTable:
    rng = np.random.default_rng(seed)
    shape = (n_time, len(NAMES), n_chan, 1)
    gain = rng.uniform(0.8, 1.2, shape) * np.exp(1j * rng.uniform(-3, 3, shape))
    weight = np.ones(shape)
    weight[2, 3] = 0.0  # an unsolved antenna in one interval
    return GainTable(gain=gain, weight=weight, time=5e9 + 60.0 * np.arange(n_time), interval=np.full(n_time, 60.0),
                     frequency=1e8 + 1e6 * np.arange(n_chan), mode="G")


def test_losoto_reads_our_table(tmp_path):
    table = gains(n_chan=3)
    positions = np.arange(15.0).reshape(5, 3) * 100
    path = write_h5parm(tmp_path / "g.h5", table, antenna_names=NAMES, antenna_positions=positions,
                        phase_centre=(0.3, -0.7), provenance={"run_id": "r1"})
    with h5parm(str(path), readonly=True) as file:
        solset = file.getSolset("sol000")
        assert sorted(solset.getSoltabNames()) == ["amplitude000", "phase000"]
        assert list(solset.getAnt()) == NAMES and np.allclose(solset.getAnt()["S004"], positions[4])
        assert np.allclose(solset.getSou()["pointing"], [0.3, -0.7])
        for name, expected in (("phase000", np.angle(table.gain)), ("amplitude000", np.abs(table.gain))):
            soltab = solset.getSoltab(name)
            assert soltab.getType() == name[:-3] and soltab.getAxesNames() == ["time", "freq", "ant", "pol"]
            values, axes = soltab.getValues()
            assert list(axes["ant"]) == NAMES and list(axes["pol"]) == ["XX", "YY"]
            assert np.array_equal(axes["time"], table.time) and np.array_equal(axes["freq"], table.frequency)
            for pol in range(2):
                assert np.allclose(values[..., pol], expected[..., 0].transpose(0, 2, 1))
            weights = soltab.getValues(weight=True)[0]
            assert weights[2, :, 3].max() == 0 and weights.sum() == weights.size - 3 * 2
    back, names = read_h5parm(path)
    assert names == NAMES and np.allclose(back.gain, table.gain) and np.array_equal(back.weight, table.weight)


def test_a_dp3_layout_written_by_losoto_reads_back(tmp_path):
    """LoSoTo's own writer, DP3's axis order time,freq,ant,dir,pol with one direction, antennas shuffled."""
    table = gains(n_time=3)
    order = [2, 0, 4, 1, 3]

    def dp3(values):  # [time, ant, chan, 1] -> [time, freq, ant, dir, pol], antennas shuffled
        return values[..., 0][:, order].transpose(0, 2, 1)[..., None, None].repeat(2, axis=-1)

    phase, amplitude, weight = dp3(np.angle(table.gain)), dp3(np.abs(table.gain)), dp3(table.weight)
    axes = ["time", "freq", "ant", "dir", "pol"]
    values = [table.time, table.frequency, np.array(NAMES)[order], np.array(["[pointing]"]), np.array(["XX", "YY"])]
    with h5parm(str(tmp_path / "dp3.h5"), readonly=False) as file:
        solset = file.makeSolset("sol000")
        solset.makeSoltab("phase", "phase000", axesNames=axes, axesVals=values, vals=phase, weights=weight)
        solset.makeSoltab("amplitude", "amplitude000", axesNames=axes, axesVals=values, vals=amplitude,
                          weights=weight)
    ms_times = table.time + 10.0
    applied = solutions_for_ms(tmp_path / "dp3.h5", NAMES, table.frequency, ms_times)  # back in the MS's order
    assert np.allclose(applied.gain, table.gain) and np.array_equal(applied.weight, table.weight)


def test_bad_tables_are_refused_in_one_line(tmp_path):
    table = gains()
    path = write_h5parm(tmp_path / "g.h5", table, antenna_names=NAMES, antenna_positions=np.zeros((5, 3)),
                        phase_centre=(0.0, 0.0))
    frequency = np.array([1e8])
    (tmp_path / "text.h5").write_text("not HDF5")
    cases = [
        (tmp_path / "text.h5", NAMES, frequency, table.time, "not an HDF5 file"),
        (tmp_path / "none.h5", NAMES, frequency, table.time, "no such H5parm"),
        (path, [*NAMES, "S099"], frequency, table.time, "no solutions for antenna.*S099"),
        (path, NAMES, frequency, table.time + 86400.0, "miss the MeasurementSet's observation"),
    ]
    for file, names, freq, times, message in cases:
        with pytest.raises(DataError, match=message) as error:
            solutions_for_ms(file, names, freq, times)
        assert "\n" not in str(error.value)
    multi = write_h5parm(tmp_path / "m.h5", gains(n_chan=3), antenna_names=NAMES, antenna_positions=np.zeros((5, 3)),
                         phase_centre=(0.0, 0.0))
    with pytest.raises(DataError, match="another band"):
        solutions_for_ms(multi, NAMES, np.array([2e8, 2.01e8]), table.time)
    with h5parm(str(tmp_path / "diag.h5"), readonly=False) as file:  # XX and YY gains that differ
        vals = np.stack([np.zeros((4, 1, 5)), np.ones((4, 1, 5))], axis=-1)
        file.makeSolset("sol000").makeSoltab("phase", "phase000", axesNames=["time", "freq", "ant", "pol"],
                                             axesVals=[table.time, frequency, np.array(NAMES), np.array(["XX", "YY"])],
                                             vals=vals, weights=np.ones_like(vals))
    with pytest.raises(DataError, match="different gains"):
        solutions_for_ms(tmp_path / "diag.h5", NAMES, frequency, table.time)
