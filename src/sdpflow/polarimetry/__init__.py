"""Polarimetry kernels: RM synthesis, RM-CLEAN and Stokes I models for batches of components.

Plain functions on numpy arrays of shape [n_components, n_channels] (numba for RM-CLEAN): no
Dask, no database. Definitions follow RM-Tools (Purcell et al. 2020) so that results can be
compared with it value for value; column names follow RMTable (Van Eck et al. 2023).

* :func:`rmsynth.faraday_grid`, :func:`rmsynth.rm_synthesis` — grid, FDF and RMSF;
* :func:`stokesi.fit_stokes_i` — log-log polynomial Stokes I models, order by AIC;
* :func:`peak.measure_peak` — rm, polint, angles and their errors from an FDF;
* :func:`rmclean.rm_clean` — Högbom RM-CLEAN;
* :func:`rmtable.measure_components` — the whole chain, RMTable-named columns;
* :mod:`simulate` — Faraday-thin sources and Burn slabs with noise, for tests and benchmarks.
"""
