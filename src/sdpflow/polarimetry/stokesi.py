"""Stokes I models: a polynomial in log-log space, its order chosen by the AIC, for a batch.

The model of RM-Tools' ``fit_function='log'``:

    log10 I(ν) = c₀ + c₁ L + c₂ L² + c₃ L³,   L = log10(ν / ν_ref),

with ν_ref = (mean over channels of ν⁻²)^(−1/2) (the frequency of the mean λ²), fitted by
least squares on the linear flux densities, χ² = Σ ((I_model − I) / σ_I)². Orders go up from
0 while the Akaike information criterion AIC = 2 (order + 1) + χ² keeps falling (at most
``max_order``), as RM-Tools does for a negative ``polyOrd``. Each order is solved by
Levenberg–Marquardt on all components at once (a few dozen small normal equations in numpy),
started from the weighted linear fit of log10 I.

Arrays are [n_components, n_channels]; frequencies in Hz, flux densities in Jy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LN10 = np.log(10.0)


@dataclass(frozen=True)
class StokesIModel:
    """Fitted Stokes I models of a batch.

    coefficients: [n_components, max_order + 1], c_j of L^j with c₀ = log10(I(ν_ref) / Jy)
    (zeros above each component's order); order: [n] (−1 where no fit was possible: the
    model is then 1 Jy, as RM-Tools falls back to unity); reference_hz: ν_ref, Hz [n];
    chi2: χ² of the chosen order [n]; aic: its AIC [n].
    """

    coefficients: np.ndarray
    order: np.ndarray
    reference_hz: np.ndarray
    chi2: np.ndarray
    aic: np.ndarray

    def evaluate(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Model flux densities, Jy [n_components, n], at frequencies shared by all ([n] Hz)."""
        f = np.asarray(frequency_hz, dtype=np.float64)
        return self._model(np.log10(f[None, :] / self.reference_hz[:, None]), self.order[:, None])

    def at(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Model flux density, Jy [n_components], at one frequency per component ([n] Hz)."""
        f = np.asarray(frequency_hz, dtype=np.float64)
        return self._model(np.log10(f / self.reference_hz), self.order)

    def _model(self, ell: np.ndarray, order: np.ndarray) -> np.ndarray:
        coefficients = self.coefficients if ell.ndim == 1 else self.coefficients[:, None, :]
        log_i = np.zeros_like(ell)
        for j in range(self.coefficients.shape[1] - 1, -1, -1):   # Horner in L
            log_i = log_i * ell + coefficients[..., j]
        return np.where(order >= 0, 10.0**log_i, 1.0)


def _basis(ell_scaled: np.ndarray, order: int) -> np.ndarray:
    """[n, n_channels, order + 1]: powers 0..order of the scaled log frequency."""
    powers = np.empty(ell_scaled.shape + (order + 1,))
    powers[..., 0] = 1.0
    for j in range(1, order + 1):
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


def _fit_order(basis: np.ndarray, stokes_i: np.ndarray, inv_sigma: np.ndarray, good: np.ndarray,
               max_iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of 10^(B·b) to I for one order; returns (b [n, k], χ² [n]).

    basis: [n, n_channels, k]; stokes_i, inv_sigma (1/σ, 0 for a flagged channel), good: [n, n_channels].
    """
    n, _, k = basis.shape
    w = np.where(good, inv_sigma, 0.0)
    data = np.where(good, stokes_i, 0.0)
    # Start: the weighted linear fit of log10 I (weights (I ln10 / σ)², positive channels only).
    positive = good & (stokes_i > 0)
    log_data = np.log10(np.where(positive, stokes_i, 1.0))
    start_w = np.where(positive, (stokes_i * LN10 * inv_sigma) ** 2, 0.0)
    normal = _normal(basis * start_w[..., None], basis)
    normal += 1e-12 * np.eye(k) * np.trace(normal, axis1=1, axis2=2)[:, None, None]
    b = _solve(normal, np.matmul((start_w * log_data)[:, None, :], basis)[:, 0, :])

    def evaluate(rows, params):
        model = np.exp(LN10 * np.matmul(basis[rows], params[..., None])[..., 0])
        return np.sum(((model - data[rows]) * w[rows]) ** 2, axis=1), model

    chi2, model = evaluate(slice(None), b)
    damping = np.full(n, 1e-3)
    active = np.arange(n)
    eye = np.eye(k)
    for _ in range(max_iterations):
        if active.size == 0:
            break
        basis_a, w_a = basis[active], w[active]
        jac = (model[active] * LN10 * w_a)[..., None] * basis_a                 # ∂r/∂b
        resid = (model[active] - data[active]) * w_a
        jtj = _normal(jac, jac)
        grad = np.matmul(resid[:, None, :], jac)[:, 0, :]
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        step = _solve(jtj + damping[active, None, None] * diag[:, :, None] * eye, -grad)
        trial = b[active] + step
        trial_chi2, trial_model = evaluate(active, trial)
        better = np.isfinite(trial_chi2) & (trial_chi2 <= chi2[active])
        # Converged when a step changes χ² by a negligible amount, either way.
        converged = np.abs(chi2[active] - trial_chi2) <= 1e-9 * np.maximum(chi2[active], 1.0)
        accepted = active[better]
        b[accepted], model[accepted], chi2[accepted] = trial[better], trial_model[better], trial_chi2[better]
        damping[active] = np.where(better, damping[active] / 10.0, damping[active] * 10.0)
        active = active[~converged & (damping[active] <= 1e8)]
    return b, chi2


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
    usable = np.isfinite(reference) & (np.sum(good & (data > 0), axis=1) > max_order + 1)
    reference = np.where(usable, reference, np.sqrt(f.min() * f.max()))
    ell = np.log10(f[None, :] / reference[:, None])
    scale = np.maximum(np.max(np.abs(np.where(good, ell, 0.0)), axis=1), 1e-12)
    ell_scaled = ell / scale[:, None]
    coefficients = np.zeros((n, max_order + 1))
    chosen_chi2 = np.full(n, np.inf)
    chosen_aic = np.full(n, np.inf)
    order = np.zeros(n, dtype=np.int64)
    still_climbing = usable.copy()
    for k in range(max_order + 1):
        if not still_climbing.any():
            break
        rows = np.flatnonzero(still_climbing)
        b, chi2 = _fit_order(_basis(ell_scaled[rows], k), data[rows], inv_sigma[rows], good[rows],
                             max_iterations)
        aic = 2.0 * (k + 1) + chi2
        improves = aic < chosen_aic[rows]
        keep = rows[improves]
        coefficients[keep] = 0.0
        coefficients[keep, : k + 1] = b[improves] / scale[keep, None] ** np.arange(k + 1)
        chosen_chi2[keep], chosen_aic[keep], order[keep] = chi2[improves], aic[improves], k
        still_climbing[rows[~improves]] = False
    order = np.where(usable, order, -1)
    return StokesIModel(coefficients=coefficients, order=order, reference_hz=reference, chi2=chosen_chi2,
                        aic=chosen_aic)
