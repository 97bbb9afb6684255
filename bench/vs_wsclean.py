"""Benchmark: ``sdpflow run continuum`` against WSClean on the same simulated MeasurementSet.

Not a test. Run with the project's environment (WSClean on the PATH, or ``--wsclean``)::

    python bench/vs_wsclean.py                       # medium preset, 1024², two runs each
    python bench/vs_wsclean.py --repeat 3 --keep --workdir DIR

Steps: ``sdpflow simulate --preset medium`` writes ``obs.ms`` (128 stations × 60 times × 16
channels, 7.8 million visibilities), then each run images it with sdpflow (default local
cluster) and with WSClean, alternating, with the same size, cell, niter, mgain,
auto-threshold and Briggs weighting; each imager grids at its own default accuracy (sdpflow:
ducc0 at imaging.epsilon 1e-4 in single precision, as WSClean's wgridder default accuracy;
WSClean 3.1: its default w-stacking gridder). Wall time = seconds from start to exit of the command;
peak memory = the largest sum of resident set sizes over the command's process tree
(sdpflow's Dask scheduler and workers included), sampled every 0.1 s. The restored images
are compared at the truth positions of the bright sources (peak within ±1 pixel,
Jy/beam), against each other and the apparent truth flux at the image frequency.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from common import load_average, run_measured, suggested_cell_asec


def source_fluxes(fits_path: Path, truth: list[dict], channel: int = 0) -> list[float]:
    """Peak (Jy/beam) within ±1 pixel of each truth position in a restored image (its plane ``channel``)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(fits_path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    wcs = WCS(header).celestial
    plane = data.reshape(-1, *data.shape[-2:])[channel]
    fluxes = []
    for source in truth:
        x, y = wcs.world_to_pixel_values(source["ra_deg"], source["dec_deg"])
        xi, yi = int(round(float(x))), int(round(float(y)))
        box = plane[max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2]
        fluxes.append(float(np.nanmax(box)) if box.size else float("nan"))
    return fluxes


def image_frequency(fits_path: Path) -> float:
    from astropy.io import fits

    header = fits.getheader(fits_path)
    for axis in range(1, header["NAXIS"] + 1):
        if str(header.get(f"CTYPE{axis}", "")).startswith("FREQ"):
            return float(header[f"CRVAL{axis}"])
    raise ValueError(f"{fits_path}: no FREQ axis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the MS and images (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the MS and images")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--scale-asec", type=float, default=None,
                        help="cell in arcsec (default: the simulation's suggested field over --size pixels)")
    parser.add_argument("--niter", type=int, default=10000)
    parser.add_argument("--mgain", type=float, default=0.8)
    parser.add_argument("--auto-threshold", type=float, default=3.0)
    parser.add_argument("--robust", type=float, default=0.0)
    parser.add_argument("--time-chunks", type=int, default=2, help="sdpflow chunks along time")
    parser.add_argument("--frequency-chunks", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="WSClean -j")
    parser.add_argument("--sdpflow-args", default="", help="extra sdpflow options, e.g. '--no-small-inversion'")
    parser.add_argument("--baseline-args", default=None,
                        help="also run sdpflow with these options instead of --sdpflow-args in each repeat "
                        "(e.g. '--cluster local:2'), as a peer measured in the same run")
    parser.add_argument("--ms", type=Path, default=None,
                        help="image this MS written by sdpflow simulate (its truth beside it) instead of simulating")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--bright", type=int, default=5, help="compare this many brightest sources")
    parser.add_argument("--wsclean", default=shutil.which("wsclean") or "wsclean")
    parser.add_argument("--json", type=Path, default=Path("vs_wsclean.json"), help="where to write the figures")
    args = parser.parse_args()

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sdpflow-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    sdpflow = [sys.executable, "-m", "sdpflow"]
    observation = workdir / "obs"  # sdpflow simulate's output folder: obs/obs.ms and its truth
    ms = observation / "obs.ms"
    if args.ms is not None:
        observation, ms = args.ms.parent, args.ms
    try:
        print(f"load before: {load_average()}", flush=True)
        simulate = {"wall_s": None}
        if args.ms is None:
            simulate = run_measured([*sdpflow, "simulate", "--preset", args.preset, "--out", str(observation)],
                                    workdir / "simulate.log")
        print(f"simulate: {simulate['wall_s']} s", flush=True)
        summary = json.loads((observation / "simulation.json").read_text())
        scale = args.scale_asec or suggested_cell_asec(ms, args.size)
        common = dict(size=args.size, scale_asec=scale, niter=args.niter, mgain=args.mgain,
                      auto_threshold=args.auto_threshold, weight=f"briggs {args.robust}")
        runs: dict[str, list[dict]] = {"sdpflow": [], "wsclean": []}
        arms = {"sdpflow": args.sdpflow_args}
        if args.baseline_args is not None:
            runs["sdpflow-baseline"], arms["sdpflow-baseline"] = [], args.baseline_args
        commands = {}
        for attempt in range(args.repeat):
            for name, extra in arms.items():
                out = workdir / f"{name}-{attempt}"
                shutil.rmtree(out, ignore_errors=True)
                commands[name] = [
                    *sdpflow, "run", "continuum", "--ms", str(ms), "--out", str(out), "--size", str(args.size),
                    str(args.size), "--scale", f"{scale}asec", "--niter", str(args.niter), "--mgain", str(args.mgain),
                    "--auto-threshold", str(args.auto_threshold), "--weight", "briggs", str(args.robust),
                    "--time-chunks", str(args.time_chunks), "--frequency-chunks", str(args.frequency_chunks),
                    *extra.split(),
                ]
                load = load_average()
                result = run_measured(commands[name], workdir / f"{name}-{attempt}.log")
                result["load_before"] = load
                result["summary"] = json.loads((out / "summary.json").read_text())
                result["stages_s"] = {m.group(1): float(m.group(2)) for m in re.finditer(
                    r"(\S+) done in ([\d.]+) s", (workdir / f"{name}-{attempt}.log").read_text())}
                runs[name].append(result)
                print(f"{name} run {attempt + 1}: {result['wall_s']} s, {result['cpu_s']} CPU-s, "
                      f"{result['peak_rss_mib']} MiB (load {load})", flush=True)

            ws = workdir / f"wsclean-{attempt}"
            shutil.rmtree(ws, ignore_errors=True)
            ws.mkdir()
            commands["wsclean"] = [
                args.wsclean, "-size", str(args.size), str(args.size), "-scale", f"{scale}asec", "-niter", str(args.niter),
                "-mgain", str(args.mgain), "-auto-threshold", str(args.auto_threshold), "-weight", "briggs",
                str(args.robust), "-j", str(args.threads), "-name", str(ws / "img"), str(ms),
            ]
            load = load_average()
            result = run_measured(commands["wsclean"], workdir / f"wsclean-{attempt}.log")
            result["load_before"] = load
            majors = re.search(r"(\d+) major iterations were performed", (workdir / f"wsclean-{attempt}.log").read_text())
            result["major_iterations"] = int(majors.group(1)) if majors else None
            runs["wsclean"].append(result)
            print(f"wsclean run {attempt + 1}: {result['wall_s']} s, {result['cpu_s']} CPU-s, {result['peak_rss_mib']} MiB "
                  f"(load {load})", flush=True)

        # flux agreement on the last run's images
        with open(observation / "truth_sky.csv") as f:
            truth = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        truth.sort(key=lambda s: -s["flux_jy"])
        bright = truth[:args.bright]
        ours_path = workdir / f"sdpflow-{args.repeat - 1}" / "restored.fits"
        theirs_path = workdir / f"wsclean-{args.repeat - 1}" / "img-image.fits"
        frequency = image_frequency(ours_path)
        ours, theirs = source_fluxes(ours_path, bright), source_fluxes(theirs_path, bright)
        sources = []
        for s, a, b in zip(bright, ours, theirs):
            apparent = s["flux_jy"] * (frequency / s["ref_freq_hz"]) ** s["spectral_index"]
            sources.append({"ra_deg": round(s["ra_deg"], 4), "dec_deg": round(s["dec_deg"], 4),
                            "truth_jy": round(apparent, 4), "sdpflow_jy": round(a, 4), "wsclean_jy": round(b, 4),
                            "difference": round(a / b - 1, 4)})

        figures = {}
        for name, results in runs.items():
            figures[name] = {
                "wall_s": [r["wall_s"] for r in results],
                "wall_s_median": statistics.median(r["wall_s"] for r in results),
                "cpu_s": [r["cpu_s"] for r in results],
                "peak_rss_mib": [r["peak_rss_mib"] for r in results],
                "peak_rss_mib_max": max(r["peak_rss_mib"] for r in results),
                "load_before": [r["load_before"] for r in results],
            }
        ratio = figures["sdpflow"]["wall_s_median"] / figures["wsclean"]["wall_s_median"]
        memory_ratio = figures["sdpflow"]["peak_rss_mib_max"] / figures["wsclean"]["peak_rss_mib_max"]
        worst = max(abs(s["difference"]) for s in sources)
        last = runs["sdpflow"][-1]["summary"]
        cycles_run = last["major_cycles_run"]
        ws_majors = runs["wsclean"][-1]["major_iterations"]
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": {"cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)},
            "n_visibilities": summary["n_visibilities"],
            "simulate_s": simulate["wall_s"],
            "settings": common,
            "commands": {k: " ".join(v) for k, v in commands.items()},
            **figures,
            "sdpflow_cycles": cycles_run,
            # gridder passes over all the data: PSF, one per major cycle (the first has no model
            # to predict), and the final residual; WSClean: PSF, dirty, then one per major iteration
            "sdpflow_inverts_predicts": [cycles_run + 2, cycles_run],
            "sdpflow_gridder": "ducc0 wgridder at sdpflow's defaults (imaging.epsilon 1e-4, imaging.precision single)",
            "wsclean_major_iterations": ws_majors,
            "wsclean_inverts_predicts": [ws_majors + 2, ws_majors] if ws_majors is not None else None,
            "wsclean_gridder": "WSClean 3.1's default (w-stacking gridder, small inversion)",
            "sdpflow_components": last["cycles"][-1]["components_total"],
            "sdpflow_stage_seconds": runs["sdpflow"][-1]["stages_s"],
            "ratio_wall_sdpflow_over_wsclean": round(ratio, 3),
            "ratio_peak_rss_sdpflow_over_wsclean": round(memory_ratio, 2),
            **({"ratio_wall_sdpflow_over_baseline": round(figures["sdpflow"]["wall_s_median"]
                                                          / figures["sdpflow-baseline"]["wall_s_median"], 3),
                "ratio_wall_baseline_over_wsclean": round(figures["sdpflow-baseline"]["wall_s_median"]
                                                          / figures["wsclean"]["wall_s_median"], 3),
                "baseline_args": args.baseline_args} if "sdpflow-baseline" in figures else {}),
            "bright_sources": sources,
            "max_flux_difference": worst,
            "flux_agreement_within_2pct": worst <= 0.02,
        }
        args.json.write_text(json.dumps(report, indent=2))

        print()
        print(f"{args.preset}: {summary['n_visibilities']:,} visibilities, {args.size}² at {scale:g}″, "
              f"niter {args.niter}, mgain {args.mgain}, auto-threshold {args.auto_threshold}, briggs {args.robust}")
        print(f"{'':17} {'wall s (each)':>22} {'median':>8} {'peak RSS MiB':>14}")
        for name in figures:
            f = figures[name]
            print(f"{name:17} {', '.join(f'{w:.1f}' for w in f['wall_s']):>22} {f['wall_s_median']:8.1f} "
                  f"{f['peak_rss_mib_max']:14.0f}")
        print(f"ratio sdpflow / WSClean: wall {ratio:.2f}x (goal <= 0.6x), peak memory {memory_ratio:.1f}x")
        print(f"major cycles: sdpflow {cycles_run} (inverts, predicts {report['sdpflow_inverts_predicts']}), "
              f"WSClean {ws_majors} (inverts, predicts {report['wsclean_inverts_predicts']})")
        print(f"\n{'truth Jy':>9} {'sdpflow':>9} {'WSClean':>9} {'diff':>7}")
        for s in sources:
            print(f"{s['truth_jy']:9.3f} {s['sdpflow_jy']:9.3f} {s['wsclean_jy']:9.3f} {100 * s['difference']:6.2f}%")
        print(f"bright-source fluxes agree within 2%: {worst <= 0.02} (worst {100 * worst:.2f}%)")
        print(f"figures: {args.json}")
    finally:
        if not args.keep:
            if temporary:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                if args.ms is None:  # the MS and its truth, written by this script (never a --ms given)
                    shutil.rmtree(observation, ignore_errors=True)
                for attempt in range(args.repeat):
                    for name in ("sdpflow", "sdpflow-baseline", "wsclean"):
                        shutil.rmtree(workdir / f"{name}-{attempt}", ignore_errors=True)


if __name__ == "__main__":
    main()
