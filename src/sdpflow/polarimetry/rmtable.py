"""From Stokes I, Q, U spectra to RMTable-named columns: the whole 1-D chain for a batch.

Stokes I model (:mod:`.stokesi`) → fractional spectra → RM synthesis (:mod:`.rmsynth`) →
peak of the dirty FDF (:mod:`.peak`) → RM-CLEAN to 3σ (:mod:`.rmclean`) → peak of the
clean FDF. The columns are those of RM-Tools' 1-D results, under RMTable's names where it
has them; the catalogue values (rm, polint, …) come from the clean FDF when ``clean`` is
on, from the dirty one otherwise, as Arrakis reports them.
"""

from __future__ import annotations

import numpy as np

from sdpflow.polarimetry.peak import FDFPeak, measure_peak
from sdpflow.polarimetry.rmclean import CleanResult, rm_clean, significant_second_moment
from sdpflow.polarimetry.rmsynth import FaradayGrid, faraday_grid, rm_synthesis, rmsf
from sdpflow.polarimetry.stokesi import StokesIModel, fit_stokes_i

#: Clean components counted in ``mom2_cc_significant``: |cc| at least this many FDF noise σ.
SIGNIFICANT_CC_SIGMA = 2.0
#: Components per internal chunk (bounds memory: the RMSFs of a chunk are 2 n_phi + 1 each).
CHUNK = 256


def _peak_columns(peak: FDFPeak, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + name: getattr(peak, name) for name in (
        "rm", "rm_err", "polint", "polint_fit", "polint_err", "snr_polint", "stokesQ", "stokesU",
        "polangle", "polangle_err", "derot_polangle", "derot_polangle_err")}


def measure_components(*, frequency_hz: np.ndarray, stokes_i: np.ndarray, stokes_q: np.ndarray,
                       stokes_u: np.ndarray, stokes_i_err: np.ndarray, stokes_q_err: np.ndarray,
                       stokes_u_err: np.ndarray, grid: FaradayGrid | None = None, max_order: int = 3,
                       stokes_i_model: StokesIModel | None = None, clean: bool = True,
                       cutoff_sigma: float = 3.0, gain: float = 0.1, max_iter: int = 1000,
                       dtype=np.complex64, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """RM synthesis and RM-CLEAN of every component; one value per component per column.

    frequency_hz: [n_channels] Hz; stokes_*: Jy [n_components, n_channels] (NaN flags a
    channel); stokes_*_err: their σ, Jy, same shape (or broadcastable). ``grid`` defaults to
    RM-Tools' grid for the band; ``stokes_i_model`` to a fit up to ``max_order``. The clean
    stops at ``cutoff_sigma`` × the FDF's theoretical noise (RM-Tools' cutoff −3 by default).

    Columns, [n_components] each, named as RMTable (and RM-Tools' catalogue export) name them:
    rm, rm_err (rad/m²); polint, polint_err (Jy, bias corrected); snr_polint; stokesQ, stokesU
    (the FDF at rm, Jy); polangle, derot_polangle and their errors (deg); fracpol = polint /
    stokesI; stokesI (the I model at reffreq_pol, Jy); reffreq_pol (ν₀, Hz); refwave_sq_pol
    (λ₀², m²); fdf_noise_th (Jy); rmsf_fwhm (rad/m²); Nchan (channels used); and, without an
    RMTable name: polint_fit (Jy, the fitted peak before bias correction),
    stokesI_model_order, stokes_I_fit_flag (RM-Tools' flags 64: model below σ_I somewhere,
    128: model negative somewhere), spectral_index (c₁ of the model, at ν_ref); with ``clean``: clean_n_iter, clean_cutoff (Jy), mom2_cc (rad/m²),
    mom2_cc_significant (rad/m², the same over clean components of at least 2σ)
    and the dirty FDF's values as dirty_rm, dirty_polint, … .

    >>> import numpy as np
    >>> from sdpflow.polarimetry.rmsynth import lambda2_from_frequency
    >>> f = np.linspace(0.8e9, 1.088e9, 288)                           # Hz, 288 channels
    >>> lam2 = lambda2_from_frequency(frequency_hz=f)                  # m²
    >>> p = 0.1 * np.exp(2j * (50.0 * lam2 + 0.3))[None]               # 1 component: 10% polarised, RM 50 rad/m²
    >>> ones = np.ones_like(p.real)                                    # Stokes I = 1 Jy; σ_Q = σ_U = 0.01 Jy
    >>> columns = measure_components(frequency_hz=f, stokes_i=ones, stokes_q=p.real, stokes_u=p.imag,
    ...                              stokes_i_err=0.01 * ones, stokes_q_err=0.01 * ones, stokes_u_err=0.01 * ones)
    >>> round(float(columns["rm"][0]), 1), round(float(columns["polint"][0]), 3)   # rad/m², Jy
    (50.0, 0.1)
    >>> round(float(columns["derot_polangle"][0]), 1)                  # deg: the 0.3 rad put in
    17.2
    """
    f = np.asarray(frequency_hz, dtype=np.float64)
    shape = np.shape(stokes_q)
    grid = faraday_grid(frequency_hz=f) if grid is None else grid
    if stokes_i_model is None:
        stokes_i_model = fit_stokes_i(frequency_hz=f, stokes_i=stokes_i,
                                      stokes_i_err=np.broadcast_to(stokes_i_err, shape), max_order=max_order)
    i_model = stokes_i_model.evaluate(f)
    q_err = np.broadcast_to(stokes_q_err, shape)
    u_err = np.broadcast_to(stokes_u_err, shape)
    var_lambda2 = float(np.var(grid.lambda2_m2, ddof=1))   # over the whole band, as RM-Tools takes it
    parts = []
    for start in range(0, shape[0], chunk):
        rows = slice(start, min(start + chunk, shape[0]))
        orders = stokes_i_model.order[rows]

        def model_at(frequency0, rows=rows):
            return stokes_i_model.select(rows).at(frequency0)

        synth = rm_synthesis(stokes_q=np.asarray(stokes_q)[rows], stokes_u=np.asarray(stokes_u)[rows],
                             stokes_q_err=q_err[rows], stokes_u_err=u_err[rows], stokes_i_model=i_model[rows],
                             i_model_at=model_at, grid=grid, with_rmsf=False, dtype=dtype)
        measure = dict(phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm, fdf_noise=synth.fdf_noise,
                       lambda0_sq_m2=synth.lambda0_sq_m2, n_channels=synth.n_good, var_lambda2_m4=var_lambda2)
        dirty = measure_peak(fdf=synth.fdf, **measure)
        columns = {
            "stokesI": synth.i_ref, "reffreq_pol": synth.frequency0_hz,
            "refwave_sq_pol": synth.lambda0_sq_m2, "fdf_noise_th": synth.fdf_noise,
            "rmsf_fwhm": np.full(synth.i_ref.shape, grid.rmsf_fwhm), "stokesI_model_order": orders,
            "stokes_I_fit_flag": stokes_i_model.flag[rows], "spectral_index": stokes_i_model.exponents[rows, 0]
            if stokes_i_model.exponents.shape[1] else np.zeros(synth.i_ref.shape),
            "Nchan": synth.n_good,
        }
        if clean:
            cutoff = cutoff_sigma * synth.fdf_noise
            cleaned = _clean_where_needed(synth, grid, cutoff, gain, max_iter, dtype)
            columns |= _peak_columns(measure_peak(fdf=cleaned.clean_fdf, **measure))
            columns |= _peak_columns(dirty, "dirty_")
            columns |= {"clean_n_iter": cleaned.n_iter, "clean_cutoff": cutoff, "mom2_cc": cleaned.mom2_cc,
                        "mom2_cc_significant": significant_second_moment(
                            components=cleaned.components, phi_radm2=grid.phi_radm2,
                            threshold=SIGNIFICANT_CC_SIGMA * synth.fdf_noise)}
        else:
            columns |= _peak_columns(dirty)
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["fracpol"] = columns["polint"] / synth.i_ref
        parts.append(columns)
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}


def _clean_where_needed(synth, grid: FaradayGrid, cutoff: np.ndarray, gain: float, max_iter: int,
                        dtype) -> CleanResult:
    """RM-CLEAN of the components whose FDF reaches the cutoff; the RMSFs (the larger part of
    the work) are made for those alone. The others keep their dirty FDF, 0 iterations and a
    NaN moment, as RM-Tools leaves them."""
    fdf = synth.fdf
    todo = np.flatnonzero(np.abs(fdf).max(axis=1) >= cutoff)
    n = fdf.shape[0]
    result = CleanResult(clean_fdf=fdf.copy(), residual_fdf=fdf.copy(), components=np.zeros_like(fdf),
                         n_iter=np.zeros(n, dtype=np.int64), mom2_cc=np.full(n, np.nan))
    if todo.size:
        some = rm_clean(fdf=fdf[todo], rmsf=rmsf(weights=synth.weights[todo],
                                                 lambda0_sq_m2=synth.lambda0_sq_m2[todo], grid=grid, dtype=dtype),
                        phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm, cutoff=cutoff[todo], gain=gain,
                        max_iter=max_iter)
        for name in ("clean_fdf", "residual_fdf", "components", "n_iter", "mom2_cc"):
            getattr(result, name)[todo] = getattr(some, name)
    return result


def as_rows(columns: dict[str, np.ndarray]) -> list[dict[str, float | int]]:
    """One dict per component (Python floats and ints, NaN kept) from :func:`measure_components`'
    columns: the rows a fan-out stage's ``batch_function`` returns for a result table."""
    names = list(columns)
    values = [np.asarray(columns[name]).tolist() for name in names]
    return [dict(zip(names, row)) for row in zip(*values)]
