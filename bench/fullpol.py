"""Benchmark: full-polarisation, multi-channel imaging, sdpflow against WSClean, and IQUV against I.

Not a test. Run with the project's environment (WSClean on the PATH, or ``--wsclean``)::

    python bench/fullpol.py                          # medium preset (4 correlations), 1024², 8 channels
    python bench/fullpol.py --repeat 2 --json fullpol.json

Steps: ``sdpflow simulate --preset medium --all-correlations`` writes ``obs.ms`` (7.8 million
visibilities × 4 correlations); then, alternating in each repeat, the same MS is imaged by

* ``sdpflow run continuum --pol IQUV --channels-out 8``,
* ``wsclean -pol IQUV -channels-out 8 -use-wgridder`` (ducc0's gridder, as sdpflow's),
* ``sdpflow run continuum --pol I --channels-out 8``,

all with the same size, cell, Briggs weighting, niter, mgain and auto-threshold; each side
cleans every Stokes parameter on its own (no joined cleaning). Wall time, CPU time and peak
memory (the process tree's resident sets summed, sampled every 0.1 s) as ``vs_wsclean.py``
measures them. Ratios: sdpflow IQUV / WSClean IQUV and sdpflow IQUV / sdpflow I (medians).
The Stokes I restored planes of the last repeat are compared at the brightest sources.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import load_average, run_measured, suggested_cell_asec
from vs_wsclean import source_fluxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the MS and images (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the MS and images")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--channels-out", type=int, default=8)
    parser.add_argument("--niter", type=int, default=10000)
    parser.add_argument("--mgain", type=float, default=0.8)
    parser.add_argument("--auto-threshold", type=float, default=3.0)
    parser.add_argument("--robust", type=float, default=0.0)
    parser.add_argument("--time-chunks", type=int, default=2, help="sdpflow chunks along time")
    parser.add_argument("--threads", type=int, default=2, help="WSClean -j")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--bright", type=int, default=5, help="compare this many brightest sources")
    parser.add_argument("--wsclean", default=shutil.which("wsclean") or "wsclean")
    parser.add_argument("--json", type=Path, default=Path("fullpol.json"), help="where to write the figures")
    args = parser.parse_args()

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sdpflow-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    sdpflow = [sys.executable, "-m", "sdpflow"]
    observation = workdir / "obs"
    ms = observation / "obs.ms"
    try:
        print(f"load before: {load_average()}", flush=True)
        simulate = run_measured([*sdpflow, "simulate", "--preset", args.preset, "--all-correlations",
                                 "--out", str(observation)], workdir / "simulate.log")
        print(f"simulate: {simulate['wall_s']} s", flush=True)
        summary = json.loads((observation / "simulation.json").read_text())
        scale = suggested_cell_asec(ms, args.size)
        settings = dict(size=args.size, scale_asec=scale, channels_out=args.channels_out, niter=args.niter,
                        mgain=args.mgain, auto_threshold=args.auto_threshold, weight=f"briggs {args.robust}")

        def sdpflow_command(pol: str, out: Path) -> list[str]:
            return [*sdpflow, "run", "continuum", "--ms", str(ms), "--out", str(out), "--pol", pol,
                    "--channels-out", str(args.channels_out), "--size", str(args.size), str(args.size),
                    "--scale", f"{scale}asec", "--niter", str(args.niter), "--mgain", str(args.mgain),
                    "--auto-threshold", str(args.auto_threshold), "--weight", "briggs", str(args.robust),
                    "--time-chunks", str(args.time_chunks)]

        def wsclean_command(out: Path) -> list[str]:
            return [args.wsclean, "-pol", "IQUV", "-channels-out", str(args.channels_out), "-use-wgridder",
                    "-size", str(args.size), str(args.size), "-scale", f"{scale}asec", "-niter", str(args.niter),
                    "-mgain", str(args.mgain), "-auto-threshold", str(args.auto_threshold), "-weight", "briggs",
                    str(args.robust), "-j", str(args.threads), "-name", str(out / "img"), str(ms)]

        runs: dict[str, list[dict]] = {"sdpflow IQUV": [], "wsclean IQUV": [], "sdpflow I": []}
        commands = {}
        for attempt in range(args.repeat):
            for name in runs:
                out = workdir / f"{name.replace(' ', '-')}-{attempt}"
                shutil.rmtree(out, ignore_errors=True)
                if name.startswith("wsclean"):
                    out.mkdir()
                    command = wsclean_command(out)
                else:
                    command = sdpflow_command(name.split()[1], out)
                commands[name] = " ".join(command)
                load = load_average()
                result = run_measured(command, workdir / f"{out.name}.log")
                result["load_before"] = load
                runs[name].append(result)
                print(f"{name} run {attempt + 1}: {result['wall_s']} s, {result['cpu_s']} CPU-s, "
                      f"{result['peak_rss_mib']} MiB (load {load})", flush=True)

        with open(observation / "truth_sky.csv") as f:
            truth = sorted(({k: float(v) for k, v in row.items() if k in ("ra_deg", "dec_deg", "flux_jy")}
                            for row in csv.DictReader(f)), key=lambda s: -s["flux_jy"])[:args.bright]
        last = args.repeat - 1
        middle = args.channels_out // 2
        ours_cube = workdir / f"sdpflow-IQUV-{last}" / "restored-I.fits"
        theirs_plane = workdir / f"wsclean-IQUV-{last}" / f"img-{middle:04d}-I-image.fits"
        ours = source_fluxes(ours_cube, truth, channel=middle)
        theirs = source_fluxes(theirs_plane, truth)
        differences = [a / b - 1 for a, b in zip(ours, theirs)]

        figures = {name: {"wall_s": [r["wall_s"] for r in results],
                          "wall_s_median": statistics.median(r["wall_s"] for r in results),
                          "cpu_s": [r["cpu_s"] for r in results],
                          "peak_rss_mib": [r["peak_rss_mib"] for r in results],
                          "peak_rss_mib_max": max(r["peak_rss_mib"] for r in results),
                          "load_before": [r["load_before"] for r in results]} for name, results in runs.items()}
        median = {name: f["wall_s_median"] for name, f in figures.items()}
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": {"cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)},
            "n_visibilities": summary["n_visibilities"],
            "simulate_s": simulate["wall_s"],
            "settings": settings,
            "commands": commands,
            **figures,
            "ratio_wall_sdpflow_over_wsclean": round(median["sdpflow IQUV"] / median["wsclean IQUV"], 3),
            "ratio_peak_rss_sdpflow_over_wsclean": round(figures["sdpflow IQUV"]["peak_rss_mib_max"]
                                                         / figures["wsclean IQUV"]["peak_rss_mib_max"], 2),
            "ratio_wall_iquv_over_i": round(median["sdpflow IQUV"] / median["sdpflow I"], 3),
            f"stokes_i_channel_{middle}_flux_difference": [round(d, 4) for d in differences],
        }
        args.json.write_text(json.dumps(report, indent=2))
        print()
        print(f"{args.preset}: {summary['n_visibilities']:,} visibilities × 4 correlations, {args.size}² at {scale:g}″, "
              f"{args.channels_out} channels, niter {args.niter}, briggs {args.robust}")
        for name, f in figures.items():
            print(f"{name:14} wall {', '.join(f'{w:.1f}' for w in f['wall_s'])} s (median {f['wall_s_median']:.1f}), "
                  f"peak {f['peak_rss_mib_max']:.0f} MiB")
        print(f"sdpflow IQUV / WSClean IQUV: wall {report['ratio_wall_sdpflow_over_wsclean']:.2f}x (goal <= 1.0x), "
              f"peak memory {report['ratio_peak_rss_sdpflow_over_wsclean']:.2f}x")
        print(f"sdpflow IQUV / sdpflow I: wall {report['ratio_wall_iquv_over_i']:.2f}x (goal <= 2.5x)")
        print(f"Stokes I, channel {middle}, brightest sources: sdpflow / WSClean - 1 = "
              f"{', '.join(f'{100 * d:.2f}%' for d in differences)}")
        print(f"figures: {args.json}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir if temporary else observation, ignore_errors=True)
            if not temporary:
                for attempt in range(args.repeat):
                    for name in ("sdpflow-IQUV", "wsclean-IQUV", "sdpflow-I"):
                        shutil.rmtree(workdir / f"{name}-{attempt}", ignore_errors=True)


if __name__ == "__main__":
    main()
