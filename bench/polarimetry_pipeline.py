"""Benchmark: the whole polarimetry pipeline per component, at growing catalogue sizes.

Not a test. Run with the project's environment::

    python bench/polarimetry_pipeline.py                         # 500 and 2,000 components
    python bench/polarimetry_pipeline.py --components 1000 10000 --channels 32

For each size N it writes analytic I/Q/U cubes (Faraday-thin Gaussian-beam point sources on a
grid 18 pixels apart, one component per island, ``--channels`` channels of 4 MHz from 800 MHz,
white noise) and a catalogue, runs ``polarimetry`` on ``local:WORKERS``, and prints each stage's
wall seconds per component, from its events. The peer is the pipeline itself at the smallest
size, measured in the same run: flat cost per component means a ratio near 1 at every size.
The driver's peak resident memory after each size is printed too (it should not grow with N).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("cutouts", "spectra", "rmsynth", "rmclean", "catalogue")


def write_field(folder: Path, n: int, n_channels: int, seed: int = 0) -> Path:
    from astropy.table import Table

    from sdpflow.polarimetry.simulate import point_source_cubes
    from sdpflow.radio.fits import image_wcs, write_fits_image

    side = int(np.ceil(np.sqrt(n)))
    spacing, margin = 18, 14
    size = 2 * margin + spacing * (side - 1) + 1
    positions = np.array([(margin + spacing * (k % side), margin + spacing * (k // side)) for k in range(n)], float)
    rng = np.random.default_rng(seed)
    frequency = 800e6 + 4e6 * np.arange(n_channels)
    truth = {"i_ref": np.exp(rng.uniform(np.log(0.02), np.log(0.2), n)), "alpha": rng.uniform(-1, 0, n),
             "fracpol": rng.uniform(0.05, 0.3, n), "polangle": rng.uniform(0, np.pi, n),
             "rm": rng.uniform(-200, 200, n)}
    cubes, fwhm = point_source_cubes(frequency_hz=frequency, shape=(size, size), positions_px=positions,
                                     reference_hz=900e6, beam_fwhm_px_at_ref=3.0, noise_jy=1e-3, seed=seed, **truth)
    cell = np.radians(5.0 / 3600)
    centre = (np.radians(150.0), np.radians(-30.0))
    folder.mkdir(parents=True, exist_ok=True)
    for plane, stokes in enumerate("IQU"):
        write_fits_image(folder / f"restored-{stokes}.fits", cubes[plane][:, None], phase_centre=centre, cell_rad=cell,
                         frequency=frequency, beams=[(f * cell, f * cell, 0.0) for f in fwhm], polarisation=(stokes,))
    ra, dec = image_wcs(size, size, phase_centre=centre, cell_rad=cell, frequency=frequency).celestial \
        .pixel_to_world_values(positions[:, 0], positions[:, 1])
    Table({"Source_ID": [f"s{k}" for k in range(n)], "Gaussian_ID": [f"s{k}_0" for k in range(n)], "RA": ra,
           "Dec": dec, "Peak_flux": 1e3 * truth["i_ref"], "Total_flux": 1e3 * truth["i_ref"],
           "Maj": np.full(n, 15.0), "Min": np.full(n, 15.0), "PA": np.zeros(n)}).write(folder / "catalogue.fits")
    return folder / "catalogue.fits"


def stage_seconds(out: Path) -> dict[str, float]:
    seconds = {}
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "stage-completed" and event.get("stage") in STAGES:
            seconds[event["stage"]] = float(event["elapsed_s"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from sdpflow.config.polarimetry import PolarimetryConfig
    from sdpflow.pipelines import start_run
    from sdpflow.store import RunStore

    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, local:{args.workers}, {args.channels} channels")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.components:
            folder = Path(scratch, f"n{n}")
            with concurrent.futures.ProcessPoolExecutor(1) as pool:  # the cubes' memory stays out of the driver
                catalogue = pool.submit(write_field, folder / "images", n, args.channels).result()
            store = RunStore(f"sqlite:///{folder / 'runs.db'}")
            started = time.perf_counter()
            start_run("polarimetry", PolarimetryConfig(images=str(folder / "images"), catalogue=str(catalogue)),
                      folder / "out", store=store, cluster_spec=f"local:{args.workers}")
            wall = time.perf_counter() - started
            seconds = stage_seconds(folder / "out")
            measured = len(store.result_rows(store.list_runs(limit=1)[0]["id"], "pol_rmclean"))
            rows.append((n, wall, seconds, measured, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    base = {stage: rows[0][2][stage] / rows[0][0] for stage in STAGES}
    print(f"{'N':>7} {'measured':>8} {'wall s':>7} " + " ".join(f"{s + ' ms/c':>15}" for s in STAGES)
          + f" {'sum ms/c':>9} {'ratio':>6} {'driver MiB':>10}")
    for n, wall, seconds, measured, rss in rows:
        per = {stage: 1e3 * seconds[stage] / n for stage in STAGES}
        total = sum(per.values())
        ratio = total / (1e3 * sum(base.values()))
        print(f"{n:>7} {measured:>8} {wall:>7.1f} " + " ".join(f"{per[s]:>15.2f}" for s in STAGES)
              + f" {total:>9.2f} {ratio:>6.2f} {rss:>10.0f}")


if __name__ == "__main__":
    main()
