"""Benchmark: RM synthesis + RM-CLEAN, sdpflow's batched kernels against RM-Tools per source.

Not a test. Run with the project's environment (RM-Tools comes with the ``test`` extra)::

    python bench/rmsynth.py                              # 2,000 components; RM-Tools on 100 of them
    python bench/rmsynth.py --components 5000 --rmtools-components 200 --workers 2

Both sides get the same simulated spectra (Faraday-thin sources, S/N 10–100 unless
``--snr-range`` says otherwise, 288 × 1 MHz
channels from 800 MHz, Gaussian noise) and the same defaults: RM-Tools' grid, inverse-variance
weights, a 'log' Stokes I model up to order 3 by AIC, RM-CLEAN to 3σ with gain 0.1 and at most
1000 iterations.

* sdpflow: :func:`sdpflow.polarimetry.rmtable.measure_components` on all components in one
  call (numba and BLAS threads = ``--workers``), after a warm-up that compiles the numba
  kernels; the median of ``--repeat`` runs.
* RM-Tools: ``run_rmsynth`` then ``run_rmclean`` called per source, as Arrakis calls them,
  in a pool of ``--workers`` processes (Arrakis's Dask workers), each with one OpenMP thread
  for finufft (faster than its default on a shared 2-core machine), after a warm-up of one
  source per process.

Throughput = components / wall seconds. The script also prints how far apart the two results
are on the spectra both measured, so that a speed-up is never bought with a different answer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import multiprocessing
import os
import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average  # noqa: E402


def _quiet(*_args, **_kwargs):
    return None


def rm_tools_one(spectrum):
    """RM-Tools on one source: (phiPeakPIfit_rm2, ampPeakPIfitEff, dPhiPeakPIfit_rm2) after RM-CLEAN."""
    from RMtools_1D.do_RMclean_1D import run_rmclean
    from RMtools_1D.do_RMsynth_1D import run_rmsynth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth, arrays = run_rmsynth(list(spectrum), polyOrd=-3, fit_function="log", verbose=False, log=_quiet)
        clean, _ = run_rmclean(synth, arrays, -3, maxIter=1000, gain=0.1, verbose=False, log=_quiet)
    return clean["phiPeakPIfit_rm2"], clean["ampPeakPIfitEff"], clean["dPhiPeakPIfit_rm2"]


def run_rm_tools(sim, n: int, workers: int) -> tuple[float, np.ndarray]:
    """Seconds for RM-Tools on the first n sources in a pool of ``workers`` processes; results [n, 3]."""
    spectra = [(sim.frequency_hz, sim.stokes_i[c], sim.stokes_q[c], sim.stokes_u[c], sim.noise[c], sim.noise[c],
                sim.noise[c]) for c in range(n)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(rm_tools_one, spectra[:workers]))                      # imports, first calls
        began = time.perf_counter()
        results = list(pool.map(rm_tools_one, spectra, chunksize=1))
        seconds = time.perf_counter() - began
    return seconds, np.array(results, dtype=np.float64)


def run_sdpflow(sim, repeat: int) -> tuple[list[float], dict]:
    from sdpflow.polarimetry.rmtable import measure_components

    def call(rows):
        return measure_components(frequency_hz=sim.frequency_hz, stokes_i=sim.stokes_i[rows],
                                  stokes_q=sim.stokes_q[rows], stokes_u=sim.stokes_u[rows],
                                  stokes_i_err=sim.noise[rows], stokes_q_err=sim.noise[rows],
                                  stokes_u_err=sim.noise[rows], max_order=3, cutoff_sigma=3.0)

    call(slice(0, 16))                                                        # numba compile, kernels
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = call(slice(None))
        seconds.append(time.perf_counter() - began)
    return seconds, result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=2000, help="components for sdpflow")
    parser.add_argument("--rmtools-components", type=int, default=100, help="of those, how many RM-Tools runs")
    parser.add_argument("--workers", type=int, default=2, help="threads (sdpflow) and processes (RM-Tools)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-range", type=float, nargs=2, default=(10.0, 100.0), metavar=("LOW", "HIGH"),
                        help="polarised S/N, log-uniform (a low LOW makes a survey-like, mostly faint mix)")
    options = parser.parse_args()
    # Threads for numba and BLAS, and one OpenMP thread per RM-Tools process (inherited by the
    # spawned processes): set before anything loads them.
    os.environ["NUMBA_NUM_THREADS"] = str(options.workers)
    os.environ["OPENBLAS_NUM_THREADS"] = str(options.workers)
    os.environ["OMP_NUM_THREADS"] = "1"
    from sdpflow.polarimetry.simulate import simulate_sources

    sim = simulate_sources(n_components=options.components, seed=options.seed, snr_range=tuple(options.snr_range))
    n_ref = min(options.rmtools_components, options.components)
    load_before = load_average()
    seconds, ours = run_sdpflow(sim, options.repeat)
    ref_seconds, theirs = run_rm_tools(sim, n_ref, options.workers)
    load_after = load_average()

    ours_rate = options.components / float(np.median(seconds))
    ref_rate = n_ref / ref_seconds
    fwhm = float(ours["rmsf_fwhm"][0])
    drm = np.abs(ours["rm"][:n_ref] - theirs[:, 0]) / fwhm
    dpol = np.abs(ours["polint"][:n_ref] / theirs[:, 1] - 1)
    derr = np.abs(ours["rm_err"][:n_ref] / theirs[:, 2] - 1)

    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}; "
          f"{cpu_model()}; load average before {load_before}, after {load_after}")
    print(f"command: python bench/rmsynth.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"versions: sdpflow {version('sdpflow')}, numpy {version('numpy')}, numba {version('numba')}, "
          f"RM-Tools {version('RM-Tools')}, finufft {version('finufft')}, Python {platform.python_version()}")
    cleaned = float(np.mean(ours["clean_n_iter"] > 0))
    print(f"RMSF FWHM {fwhm:.3f} rad/m², {ours['rm'].size} components (S/N {options.snr_range[0]:g}–"
          f"{options.snr_range[1]:g}, {100 * cleaned:.0f}% above the clean cutoff); "
          f"sdpflow runs (s): {', '.join(f'{s:.2f}' for s in seconds)}")
    print()
    print("| | components | wall s | components/s |")
    print("|---|---|---|---|")
    print(f"| sdpflow, batched ({options.workers} threads) | {options.components} | {np.median(seconds):.2f} | "
          f"{ours_rate:.0f} |")
    print(f"| RM-Tools per source ({options.workers} processes) | {n_ref} | {ref_seconds:.2f} | {ref_rate:.1f} |")
    print(f"| **ratio** | | | **{ours_rate / ref_rate:.0f}×** |")
    print()
    both = np.isfinite(drm) & np.isfinite(dpol)
    nan_ours, nan_theirs = ~np.isfinite(ours["rm"][:n_ref]), ~np.isfinite(theirs[:, 0])
    print(f"agreement on the {n_ref} common sources (after RM-CLEAN): |ΔRM| / FWHM median "
          f"{np.median(drm[both]):.2g}, max {np.max(drm[both]):.2g}; polint relative median "
          f"{np.median(dpol[both]):.2g}, max {np.max(dpol[both]):.2g}; rm_err relative max "
          f"{np.nanmax(derr):.2g}; rm NaN: {nan_ours.sum()} sdpflow, {nan_theirs.sum()} RM-Tools, "
          f"{(nan_ours & nan_theirs).sum()} both")

if __name__ == "__main__":
    main()
