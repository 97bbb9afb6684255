"""Stokes I models: a polynomial in log-log space, its order chosen by the AIC, for a batch.

The model of RM-Tools' ``fit_function='log'``:

    I(ν) = A · (ν/ν_ref)^(c₁ + c₂ L + c₃ L²) = A · 10^(c₁ L + c₂ L² + c₃ L³),   L = log10(ν/ν_ref),

i.e. log10 I is a polynomial in L of order ≤ 3, with ν_ref = (mean over channels of ν⁻²)^(−1/2)
(the frequency of the mean λ²). As in RM-Tools the amplitude A is free in sign (a Stokes I
buried in noise can be fitted by a negative model; such models are flagged), and the fit is
least squares on the linear flux densities, χ² = Σ ((I_model − I) / σ_I)². Orders go up from
0 while the Akaike information criterion AIC = 2 (order + 1) + χ² keeps falling (at most
``max_order``), as RM-Tools does for a negative ``polyOrd``. Each order is solved by
Levenberg–Marquardt on all components at once (small normal equations in numpy), started from
the better of the weighted linear fit of log10 I and the weighted mean with c = 0.

Arrays are [n_components, n_channels]; frequencies in Hz, flux densities in Jy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LN10 = np.log(10.0)
#: Flags, as RM-Tools adds them to its ``IfitStat``: the model is below σ_I in some channel …
FLAG_LOW_SNR = 64
#: … or negative in some channel.
FLAG_NEGATIVE = 128


@dataclass(frozen=True)
class StokesIModel:
    """Fitted Stokes I models of a batch.

    amplitude: A = I(ν_ref), Jy [n] (negative where the fit went negative); exponents:
    [n, max_order], c₁ … (c₁ is the spectral index; zeros above each component's order);
    order: [n] (−1 where too few channels were usable: the model is then 1 Jy, as RM-Tools
    falls back to unity); reference_hz: ν_ref, Hz [n]; chi2, aic of the chosen order [n];
    flag: FLAG_LOW_SNR | FLAG_NEGATIVE bits [n].
    """

    amplitude: np.ndarray
    exponents: np.ndarray
    order: np.ndarray
    reference_hz: np.ndarray
    chi2: np.ndarray
    aic: np.ndarray
    flag: np.ndarray

    def evaluate(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Model flux densities, Jy [n_components, n], at frequencies shared by all ([n] Hz)."""
        f = np.asarray(frequency_hz, dtype=np.float64)
        ell = np.log10(f[None, :] / self.reference_hz[:, None])
        return _model(ell, self.amplitude[:, None], self.exponents[:, None, :], self.order[:, None])

    def at(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Model flux density, Jy [n_components], at one frequency per component ([n] Hz)."""
        ell = np.log10(np.asarray(frequency_hz, dtype=np.float64) / self.reference_hz)
        return _model(ell, self.amplitude, self.exponents, self.order)

    def select(self, rows) -> "StokesIModel":
        """The models of some components (a slice, index array or mask)."""
        return StokesIModel(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def _model(ell: np.ndarray, amplitude: np.ndarray, exponents: np.ndarray, order: np.ndarray) -> np.ndarray:
    """A · 10^(c₁ L + c₂ L² + …) by Horner's rule, 1 where order < 0; exponents' last axis is j."""
    exponent = np.zeros_like(ell)
    for j in range(exponents.shape[-1] - 1, -1, -1):
        exponent = (exponent + exponents[..., j]) * ell
    return np.where(order >= 0, amplitude * np.exp(LN10 * exponent), 1.0)


def _powers(ell_scaled: np.ndarray, order: int) -> np.ndarray:
    """[n, n_channels, order]: powers 1..order of the scaled log frequency."""
    powers = np.empty(ell_scaled.shape + (order,))
    if order:
        powers[..., 0] = ell_scaled
    for j in range(1, order):
        powers[..., j] = powers[..., j - 1] * ell_scaled
    return powers


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched solve of [n, k, k] x = [n, k]; singular systems give zeros (no step)."""
    try:
        return np.linalg.solve(matrix, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.zeros_like(rhs)
        for c in range(matrix.shape[0]):
            try:
                out[c] = np.linalg.solve(matrix[c], rhs[c])
            except np.linalg.LinAlgError:
                pass
        return out


def _normal(weighted_basis: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """[n, k, k] = weighted_basisᵀ · basis per component."""
    return np.matmul(weighted_basis.transpose(0, 2, 1), basis)


def _fit_order(powers: np.ndarray, stokes_i: np.ndarray, inv_sigma: np.ndarray, good: np.ndarray,
               max_iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of A·10^(P·c) to I for one order; returns (p = [A, c…] [n, 1 + k], χ² [n]).

    powers: [n, n_channels, k]; stokes_i, inv_sigma (1/σ, 0 for a flagged channel), good: [n, n_channels].
    """
    n, _, k = powers.shape
    w = np.where(good, inv_sigma, 0.0)
    data = np.where(good, stokes_i, 0.0)

    def evaluate(rows, params):
        shape = np.exp(LN10 * np.matmul(powers[rows], params[:, 1:, None])[..., 0])
        model = params[:, :1] * shape
        return np.sum(((model - data[rows]) * w[rows]) ** 2, axis=1), model, shape

    # Start 1: the weighted mean, c = 0. Start 2: the weighted linear fit of log10 I (weights
    # (I ln10 / σ)², positive channels only), where it exists. Keep the better.
    p = np.zeros((n, 1 + k))
    with np.errstate(divide="ignore", invalid="ignore"):
        p[:, 0] = np.sum(w**2 * data, axis=1) / np.sum(w**2, axis=1)
    p[:, 0] = np.nan_to_num(p[:, 0])
    chi2, model, shape = evaluate(slice(None), p)
    positive = good & (stokes_i > 0)
    start_w = np.where(positive, (stokes_i * LN10 * inv_sigma) ** 2, 0.0)
    basis = np.concatenate([np.ones(powers.shape[:2] + (1,)), powers], axis=2)
    normal = _normal(basis * start_w[..., None], basis)
    normal += 1e-12 * np.eye(1 + k) * np.trace(normal, axis1=1, axis2=2)[:, None, None]
    log_data = np.log10(np.where(positive, stokes_i, 1.0))
    b = _solve(normal, np.matmul((start_w * log_data)[:, None, :], basis)[:, 0, :])
    log_start = np.concatenate([10.0 ** b[:, :1], b[:, 1:]], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        log_chi2, log_model, log_shape = evaluate(slice(None), log_start)
    use = np.isfinite(log_chi2) & (log_chi2 < chi2) & (positive.sum(axis=1) > k + 1)
    p[use], chi2[use], model[use], shape[use] = log_start[use], log_chi2[use], log_model[use], log_shape[use]

    damping = np.full(n, 1e-3)
    active = np.arange(n)
    eye = np.eye(1 + k)
    for _ in range(max_iterations):
        if active.size == 0:
            break
        w_a = w[active]
        jac = np.empty(w_a.shape + (1 + k,))                          # ∂r/∂A, ∂r/∂c_j
        jac[..., 0] = shape[active] * w_a
        jac[..., 1:] = (model[active] * LN10 * w_a)[..., None] * powers[active]
        resid = (model[active] - data[active]) * w_a
        jtj = _normal(jac, jac)
        grad = np.matmul(resid[:, None, :], jac)[:, 0, :]
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        step = _solve(jtj + damping[active, None, None] * diag[:, :, None] * eye, -grad)
        trial = p[active] + step
        with np.errstate(over="ignore", invalid="ignore"):
            trial_chi2, trial_model, trial_shape = evaluate(active, trial)
        better = np.isfinite(trial_chi2) & (trial_chi2 <= chi2[active])
        # Converged when a step changes χ² by a negligible amount, either way.
        converged = np.abs(chi2[active] - trial_chi2) <= 1e-9 * np.maximum(chi2[active], 1.0)
        accepted = active[better]
        p[accepted], chi2[accepted] = trial[better], trial_chi2[better]
        model[accepted], shape[accepted] = trial_model[better], trial_shape[better]
        damping[active] = np.where(better, damping[active] / 10.0, damping[active] * 10.0)
        active = active[~converged & (damping[active] <= 1e8)]
    return p, chi2


def fit_stokes_i(*, frequency_hz: np.ndarray, stokes_i: np.ndarray, stokes_i_err: np.ndarray,
                 max_order: int = 3, max_iterations: int = 50) -> StokesIModel:
    """Fit the log-log polynomial Stokes I model to each component (module docstring).

    frequency_hz: [n_channels] Hz; stokes_i, stokes_i_err: Jy [n_components, n_channels]
    (NaN marks a flagged channel). ``max_order`` ≤ 5: the largest order tried.
    """
    f = np.asarray(frequency_hz, dtype=np.float64)
    data = np.atleast_2d(np.asarray(stokes_i, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(stokes_i_err, dtype=np.float64), data.shape)
    if data.shape[1] != f.size:
        raise ValueError(f"stokes_i has {data.shape[1]} channels, frequency_hz {f.size}")
    if not 0 <= max_order <= 5:
        raise ValueError("max_order must be within 0..5")
    good = np.isfinite(data) & np.isfinite(sigma) & (sigma > 0)
    n = data.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        reference = 1.0 / np.sqrt(np.sum(np.where(good, f**-2, 0.0), axis=1) / good.sum(axis=1))
        inv_sigma = np.where(good, 1.0 / sigma, 0.0)
    usable = np.isfinite(reference) & (good.sum(axis=1) > max_order + 1)
    reference = np.where(usable, reference, np.sqrt(f.min() * f.max()))
    ell = np.log10(f[None, :] / reference[:, None])
    scale = np.maximum(np.max(np.abs(np.where(good, ell, 0.0)), axis=1), 1e-12)
    ell_scaled = ell / scale[:, None]
    amplitude = np.ones(n)
    exponents = np.zeros((n, max_order))
    chosen_chi2 = np.full(n, np.inf)
    chosen_aic = np.full(n, np.inf)
    order = np.zeros(n, dtype=np.int64)
    still_climbing = usable.copy()
    for k in range(max_order + 1):
        if not still_climbing.any():
            break
        rows = np.flatnonzero(still_climbing)
        p, chi2 = _fit_order(_powers(ell_scaled[rows], k), data[rows], inv_sigma[rows], good[rows],
                             max_iterations)
        aic = 2.0 * (k + 1) + chi2
        improves = aic < chosen_aic[rows]
        keep = rows[improves]
        amplitude[keep] = p[improves, 0]
        exponents[keep] = 0.0
        exponents[keep, :k] = p[improves, 1:] / scale[keep, None] ** np.arange(1, k + 1)
        chosen_chi2[keep], chosen_aic[keep], order[keep] = chi2[improves], aic[improves], k
        still_climbing[rows[~improves]] = False
    order = np.where(usable, order, -1)
    amplitude = np.where(usable, amplitude, 1.0)
    model = StokesIModel(amplitude=amplitude, exponents=exponents, order=order, reference_hz=reference,
                         chi2=chosen_chi2, aic=chosen_aic, flag=np.zeros(n, dtype=np.int64))
    values = model.evaluate(f)
    flag = np.where(np.any(values < 0, axis=1), FLAG_NEGATIVE, 0)
    flag |= np.where(np.any(values < sigma, axis=1), FLAG_LOW_SNR, 0)
    flag = np.where(usable, flag, 0)
    return StokesIModel(amplitude=amplitude, exponents=exponents, order=order, reference_hz=reference,
                        chi2=chosen_chi2, aic=chosen_aic, flag=flag)
