"""Benchmark: sdpflow's invert against a bare ducc0 ``vis2dirty`` call on the same data.

Not a test. Run with the project's environment::

    python bench/overhead.py                     # simulates the medium preset first
    python bench/overhead.py --ms PATH.ms        # an existing MS (DATA, XX/YY or Stokes I)

The MS is read once (Stokes I, natural weights). Each measurement is repeated ``--repeat``
times and the median is reported:

* ``ducc0 complex128``: ``vis2dirty`` on Stokes I as complex128 with float64 weights (the
  precision sdpflow grids in), the inputs prepared outside the timing;
* ``ducc0 complex64``: the same call on the data as read (complex64, float32 weights);
* ``sdpflow invert``: :func:`sdpflow.radio.imaging.invert` on the same Visibility (its
  flag/weight preparation, precision conversion, gridding and transpose);
* ``chunk major_cycle``: :func:`sdpflow.pipelines.imaging.chunks.major_cycle` with no model (the
  pipeline's first residual = dirty image) and ``chunk_psf``, in-process;
* ``pipeline on LocalCluster``: the chunks on a local Dask cluster of ``--threads`` workers
  × 1 thread (one chunk each, read on the workers), residual tree-summed: the PSF/dirty
  stage without file output, compared with ducc0 at ``nthreads=--threads``.

Image 1024², epsilon 1e-5, w-gridding on, cell from the simulation (the suggested field
over 1024 pixels) unless ``--cell-asec``.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import load_average, suggested_cell_asec
from ducc0.wgridder.experimental import vis2dirty

from sdpflow.pipelines.imaging import chunks as chunk_tasks
from sdpflow.pipelines.imaging.partition import plan_chunks
from sdpflow.radio.imaging import invert
from sdpflow.radio.ms import read_ms_metadata, read_visibility


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the simulated MS (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the simulated MS")
    parser.add_argument("--ms", type=Path, default=None, help="image this MS instead of simulating one")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cell-asec", type=float, default=None)
    parser.add_argument("--epsilon", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2, help="nthreads for ducc0 / workers of the cluster")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster measurement")
    parser.add_argument("--json", type=Path, default=Path("overhead.json"))
    args = parser.parse_args()

    temporary = args.workdir is None and args.ms is None
    workdir = Path(tempfile.mkdtemp(prefix="sdpflow-bench-")) if temporary else (args.workdir or args.ms.parent)
    try:
        if args.ms is None:
            workdir.mkdir(parents=True, exist_ok=True)
            ms = workdir / "obs" / "obs.ms"  # sdpflow simulate writes OUT/obs.ms
            subprocess.run([sys.executable, "-m", "sdpflow", "simulate", "--preset", args.preset,
                            "--out", str(ms.parent)], check=True, stdout=subprocess.DEVNULL)
        else:
            ms = args.ms
        cell_asec = args.cell_asec or suggested_cell_asec(ms, args.size)
        cell = np.radians(cell_asec / 3600)
        npix = args.size
        print(f"load before: {load_average()}", flush=True)

        started = time.perf_counter()
        vis = read_visibility(str(ms))  # Stokes I
        read_s = time.perf_counter() - started
        n_vis = vis.n_rows * vis.n_channels
        print(f"read {n_vis:,} Stokes I visibilities in {read_s:.1f} s", flush=True)

        uvw = np.ascontiguousarray(vis.uvw, dtype=np.float64)
        freq = np.ascontiguousarray(vis.frequency, dtype=np.float64)
        flag = vis.flag[:, :, 0]
        vis64 = np.ascontiguousarray(vis.vis[:, :, 0])
        wgt32 = np.where(flag, np.float32(0), vis.weight[:, :, 0]).astype(np.float32)
        vis128 = vis64.astype(np.complex128)
        wgt64 = wgt32.astype(np.float64)

        def bare(v, w, nthreads):
            return vis2dirty(uvw=uvw, freq=freq, vis=v, wgt=w, npix_x=npix, npix_y=npix, pixsize_x=cell,
                             pixsize_y=cell, epsilon=args.epsilon, do_wgridding=True, nthreads=nthreads,
                             flip_v=True, divide_by_n=False)

        rows = {}

        def record(name, threads, fn):
            median, each, result = timed(fn, args.repeat)
            rows[name] = {"threads": threads, "median_s": round(median, 3), "each_s": [round(t, 3) for t in each]}
            print(f"{name:42} {threads:>2} thr  {median:7.3f} s  ({', '.join(f'{t:.3f}' for t in each)})", flush=True)
            return result

        reference = None
        for nthreads in sorted({1, args.threads}):
            reference = record(f"ducc0 vis2dirty complex128 (nthreads={nthreads})", nthreads,
                               lambda: bare(vis128, wgt64, nthreads))
            record(f"ducc0 vis2dirty complex64 (nthreads={nthreads})", nthreads, lambda: bare(vis64, wgt32, nthreads))
            ours = record(f"sdpflow invert (nthreads={nthreads})", nthreads,
                          lambda: invert(vis, npix_x=npix, npix_y=npix, cell_rad=cell, epsilon=args.epsilon,
                                         nthreads=nthreads))
        difference = float(np.max(np.abs(ours.image[0] - reference.T)) / np.max(np.abs(reference)))
        print(f"sdpflow invert vs bare ducc0 complex128: max |difference| / peak = {difference:.1e}")

        metadata = read_ms_metadata(str(ms))
        whole = plan_chunks(metadata.time_rows, metadata.times, metadata.n_channels, time_chunks=1)[0]
        grid = chunk_tasks.ImageGrid(npix, npix, cell, epsilon=args.epsilon, nthreads=1)
        data = chunk_tasks.ChunkData(whole, vis)
        record("chunks.major_cycle, no model (1 chunk)", 1, lambda: chunk_tasks.major_cycle(data, None, grid))
        record("chunks.chunk_psf (1 chunk)", 1, lambda: chunk_tasks.chunk_psf(data, grid))

        if not args.no_cluster:
            from distributed import Client, LocalCluster, wait

            from sdpflow.engine.distribute import tree_sum

            with LocalCluster(n_workers=args.threads, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                parts = plan_chunks(metadata.time_rows, metadata.times, metadata.n_channels, time_chunks=args.threads)
                futures = [client.submit(chunk_tasks.read_chunk, str(ms), part, "DATA") for part in parts]
                wait(futures)

                def dirty_on_cluster():
                    results = [client.submit(chunk_tasks.major_cycle, f, None, grid, pure=False) for f in futures]
                    total = tree_sum(client, [client.submit(operator.itemgetter(0), r) for r in results])
                    return total.result()

                def psf_on_cluster():
                    return tree_sum(client, [client.submit(chunk_tasks.chunk_psf, f, grid, pure=False)
                                             for f in futures]).result()

                record(f"LocalCluster dirty ({len(parts)} chunks × 1 thr)", args.threads, dirty_on_cluster)
                record(f"LocalCluster PSF ({len(parts)} chunks × 1 thr)", args.threads, psf_on_cluster)

        def ratio(a, b):
            return round(rows[a]["median_s"] / rows[b]["median_s"], 3)

        n = args.threads
        ratios = {
            "invert / ducc0 complex128 (1 thread)": ratio("sdpflow invert (nthreads=1)",
                                                          "ducc0 vis2dirty complex128 (nthreads=1)"),
            f"invert / ducc0 complex128 ({n} threads)": ratio(f"sdpflow invert (nthreads={n})",
                                                              f"ducc0 vis2dirty complex128 (nthreads={n})"),
            "invert / ducc0 complex64 (1 thread)": ratio("sdpflow invert (nthreads=1)",
                                                         "ducc0 vis2dirty complex64 (nthreads=1)"),
            "major_cycle / ducc0 complex128 (1 thread)": ratio("chunks.major_cycle, no model (1 chunk)",
                                                               "ducc0 vis2dirty complex128 (nthreads=1)"),
        }
        if not args.no_cluster:
            key = next(k for k in rows if k.startswith("LocalCluster dirty"))
            ratios[f"LocalCluster dirty / ducc0 complex128 ({n} threads)"] = ratio(
                key, f"ducc0 vis2dirty complex128 (nthreads={n})")
        print()
        for name, value in ratios.items():
            print(f"ratio {name}: {value:.3f}  (goal <= 1.15)")
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(), "n_visibilities": n_vis,
            "size": npix, "cell_asec": cell_asec, "epsilon": args.epsilon, "read_s": round(read_s, 2),
            "timings": rows, "ratios": ratios, "max_relative_difference": difference,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"figures: {args.json}")
    finally:
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.ms is None and not args.keep:
            shutil.rmtree(workdir / "obs.ms", ignore_errors=True)


if __name__ == "__main__":
    main()
