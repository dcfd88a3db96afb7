"""The multilevel normal model with a random intercept on data read in chunks of rows.

:class:`StreamedMultilevelNorm` is :class:`~mlimpute.models.ml_norm.MultilevelNorm` (the
same model, priors, starting values and Gibbs step, with the same random numbers drawn in
the same order) for :class:`~mlimpute.models.streamed.StreamedData`: the design is never
stored. With X = [R C] (R the columns that vary within clusters, C those constant within
them, value m_j in cluster j) every sum the step needs comes from one pass over the
rows, chunk by chunk, the missing rows masked out: ``R'R``, ``R'y`` and the cluster sums
of R (those of the data columns kept from the first pass); the rest is per cluster
(``R'C = S_R'M``, ``C'C = M'diag(n)M``, ``C'y = M'S_y``), as on the stored
design's split path (:func:`~mlimpute.models._ml_norm_static.split_stats`). With a random
intercept the working-scale regression of the parameter expansion needs only the
clusters' residual sums; the residual variance needs one more pass (the residuals
themselves, not an expansion of their squares, which would lose digits when the mean of
y is large against its spread), which also gives the missing rows' predictor
``R β_R + (Mβ_C + b)_j`` for the draw that follows.

Numbers: the same quantities as the stored design's step, summed in another order
(chunk by chunk), so they agree with it to rounding (tested), not bit for bit. Memory:
the chunks' columns (about :data:`~mlimpute.models.streamed.CHUNK_ROWS` rows) and
arrays of one value per cluster, instead of p numbers per row and model.
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.linalg import draw_chol, draw_precision_batched, solve_spd
from mlimpute.models.ml_norm import MultilevelNorm, MultilevelNormState
from mlimpute.models.ml_norm_stats import (
    _b_mean,
    _beta_marginal,
    _cluster_precision,
    _ClusterStats,
    _Weights,
)
from mlimpute.models.streamed import StreamedData

__all__ = ["StreamedMultilevelNorm"]


class StreamedMultilevelNorm(MultilevelNorm):
    """:class:`~mlimpute.models.ml_norm.MultilevelNorm` with a random intercept on
    :class:`~mlimpute.models.streamed.StreamedData` (its options, its model). On a stored
    design (a reader's materialised copy: :meth:`mlimpute.sampler.plan.Plan.stored`) it is
    :class:`~mlimpute.models.ml_norm.MultilevelNorm`."""

    @classmethod
    def like(cls, model: MultilevelNorm) -> StreamedMultilevelNorm:
        """The same model (the same options) for streamed data."""
        new = cls.__new__(cls)
        new.__dict__.update(model.__dict__)
        return new

    def check(self, data: StreamedData) -> None:
        """Nothing to check: a random intercept and a full-rank design (the plan checks)."""
        if not isinstance(data, StreamedData):
            super().check(data)

    def init(self, rng: np.random.Generator, data: StreamedData) -> MultilevelNormState:
        if not isinstance(data, StreamedData):
            return super().init(rng, data)
        stats = cluster_stats(data)
        return self._gibbs(rng, self.start_streamed(data, stats), data, stats)

    def start_streamed(self, data: StreamedData, stats: _ClusterStats) -> MultilevelNormState:
        """Least squares for β, moments for Ψ and σ² (:func:`_moments` of the stored
        design's start, on the clusters' sums and one pass over the rows)."""
        sd_y = _sd_y(data)
        scale = np.full(1, sd_y * self.prior_scale)
        beta = _solve(stats.XtX, stats.Xty)
        psi, s2 = _moments(data, stats, beta, scale)
        floor = 1e-10 * sd_y**2
        J = data.n_clusters
        return MultilevelNormState(
            beta, np.zeros((J, 1)), max(s2, floor), psi, np.sqrt(np.diag(psi)), scale,
            sigma2_floor=floor,
        )  # fmt: skip

    def step(
        self, rng: np.random.Generator, state: MultilevelNormState, data: StreamedData
    ) -> MultilevelNormState:
        if not isinstance(data, StreamedData):
            return super().step(rng, state, data)
        return self._gibbs(rng, state, data, cluster_stats(data))

    def _gibbs(
        self,
        rng: np.random.Generator,
        state: MultilevelNormState,
        data: StreamedData,
        stats: _ClusterStats,
    ) -> MultilevelNormState:
        """Steps (1)-(4) of :meth:`MultilevelNorm.gibbs` (one random-intercept block: no
        Metropolis-Hastings step), the random numbers in its order."""
        w = _Weights(state.sigma2, state.sigma2, state.sigma2, None)
        s2 = state.sigma2
        P, L, Ww = _cluster_precision(stats.ZtZ / s2, state.psi, stats, w, 1)
        A, h = _beta_marginal(None, None, Ww, stats, w)
        del Ww
        mean, LA = solve_spd(A, h)
        beta = draw_chol(rng, LA, mean)
        c = stats.Zty - stats.ZtX @ beta  # (J, 1): the clusters' sums of y - Xβ
        b = draw_precision_batched(rng, P, c / s2)
        b_mean = _b_mean(L, stats, mean, w, 1)
        # parameter expansion, b = α ξ: α | ξ is a regression of y - Xβ on ξ of each row
        alpha = np.where(np.abs(state.alpha) > 1e-150, state.alpha, 1e-150)
        xi = b / alpha
        n = _fixed_sums(data)[0]
        prec = np.array([[float(n @ np.square(xi[:, 0])) / s2 + 2.0 / state.scale[0] ** 2]])
        m_a, La = solve_spd(prec, np.array([float(xi[:, 0] @ c[:, 0]) / s2]))
        alpha = draw_chol(rng, La, m_a)
        alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
        b = xi * alpha
        # σ² | β, b: SSR / χ²(n_obs); the same pass gives the missing rows' predictor
        u = stats.M @ beta[data.constant] + b[:, 0]
        ss, pred = _pass(data, u, beta[data.within], keep=True)
        sigma2 = max(ss / rng.chisquare(max(data.n_obs, 1)), state.sigma2_floor)
        psi = self._psi_xi(rng, xi, data) * np.outer(alpha, alpha)
        new = MultilevelNormState(
            beta, b, sigma2, psi, alpha, state.scale, mean, b_mean, None, state.sigma2_floor
        )
        data.pending = (new, pred)
        return new

    def draw_missing(
        self, rng: np.random.Generator, state: MultilevelNormState, data: StreamedData
    ) -> np.ndarray:
        """``x'β + b_j + e`` with a fresh ``e`` (the random numbers of the stored path;
        ``x'β + b_j`` from :meth:`predict`)."""
        if not isinstance(data, StreamedData):
            return super().draw_missing(rng, state, data)
        out = self.predict(state, data)
        e = rng.standard_normal(data.n_mis)
        np.multiply(np.sqrt(state.sigma2), e, out=e)
        out += e
        return out

    def predict(
        self,
        state: MultilevelNormState,
        data: StreamedData,
        rows: str = "mis",
        mean: bool = False,
    ) -> np.ndarray:
        """Linear predictor ``x'β + b_j`` on the observed or missing rows; on the missing
        rows, for the state the last step on ``data`` made, the one that step's pass made
        (taken once)."""
        if not isinstance(data, StreamedData):
            return super().predict(state, data, rows, mean)
        if rows == "mis" and not mean:
            hit, data.pending = data.pending, None
            if hit is not None and hit[0] is state:
                return hit[1]
        beta, b = (state.beta_mean, state.b_mean) if mean else (state.beta, state.b)
        u = data.cluster_columns() @ beta[data.constant] + b[:, 0]
        return _pass(data, u, beta[data.within], keep=True, rows=rows)[1]

    def param_names(self, data: StreamedData) -> list[str]:
        if not isinstance(data, StreamedData):
            return super().param_names(data)
        return [*data.names, f"var(Intercept|{data.group})", "var(Residual)"]

    def param_vector(self, state: MultilevelNormState, data: StreamedData) -> np.ndarray:
        if not isinstance(data, StreamedData):
            return super().param_vector(state, data)
        return np.concatenate((state.beta, state.psi[0, :1], [state.sigma2]))

    def random_effect_names(self, data: StreamedData) -> list[str]:
        if not isinstance(data, StreamedData):
            return super().random_effect_names(data)
        return ["Intercept"]


def cluster_stats(data: StreamedData) -> _ClusterStats:
    """``Z'Z``, ``Z'X``, ``Z'y``, ``X'X`` and ``X'y`` (the stored split path's
    :class:`_ClusterStats`) from one pass over the rows (the missing ones masked out);
    the sums of the columns no imputation changes are kept from the first call."""
    J, p = data.n_clusters, len(data.names)
    within, const = data.within, data.constant
    n, S_y, S_fixed, RtR_fixed, Rty_fixed = _fixed_sums(data)
    S_R, RtR, Rty = S_fixed.copy(), RtR_fixed.copy(), Rty_fixed.copy()
    changing = data.changing
    if changing.size:
        r = within.size
        for part in data.parts:
            lo, hi, a, b, starts, _ = part
            w = data.observed[lo:hi]
            y = data.response(lo, hi)
            cols = data.columns(part)
            for i in changing:
                cw = np.multiply(cols[i], w)  # 0 on the missing rows
                S_R[a:b, i] = np.add.reduceat(cw, starts)
                Rty[i] += cw @ y
                for j in range(r):
                    if j >= i or j not in changing:  # (i, j) and (j, i) once
                        RtR[i, j] += cw @ cols[j]
        for i in changing:
            RtR[:, i] = RtR[i, :]
    M = data.cluster_columns()
    nM = n[:, None] * M
    SC = np.empty((J, p + 1))
    SC[:, within] = S_R
    SC[:, const] = nM
    SC[:, p] = S_y
    XtX = np.empty((p, p))
    XtX[np.ix_(within, within)] = RtR
    RC = S_R.T @ M
    XtX[np.ix_(within, const)] = RC
    XtX[np.ix_(const, within)] = RC.T
    XtX[np.ix_(const, const)] = M.T @ nM
    Xty = np.empty(p)
    Xty[within] = Rty
    Xty[const] = M.T @ S_y
    return _ClusterStats(
        n[:, None, None], SC[:, None, :p], S_y[:, None], True, XtX, Xty, None, M, SC[:, None, :]
    )


def _fixed_sums(data: StreamedData) -> tuple[np.ndarray, ...]:
    """What no imputation changes, summed over the observed rows once and kept: the rows
    per cluster (float), the responses' cluster sums, and for the data columns that vary
    within clusters their cluster sums (J, r), cross-products (r, r) and products with
    the response (r) (0 where a column changes)."""
    hit = data.cache.get("fixed")
    if hit is None:
        J, r = data.n_clusters, data.within.size
        n, S_y = np.zeros(J), np.zeros(J)
        S, RtR, Rty = np.zeros((J, r)), np.zeros((r, r)), np.zeros(r)
        fixed = [i for i in range(r) if i not in data.changing]
        sources = [data.sources[k] for k in data.within]
        for part in data.parts:
            lo, hi, a, b, starts, _ = part
            w = data.observed[lo:hi]
            n[a:b] = np.add.reduceat(w.astype(np.float64), starts)
            y = np.where(w, data.y[lo:hi], 0.0)
            S_y[a:b] = np.add.reduceat(y, starts)
            cols = {i: data.column(sources[i], part) for i in fixed}
            for i in fixed:
                cw = np.multiply(cols[i], w)
                S[a:b, i] = np.add.reduceat(cw, starts)
                Rty[i] += cw @ y
                for j in fixed:
                    if j >= i:
                        RtR[i, j] += cw @ cols[j]
        RtR = np.triu(RtR) + np.triu(RtR, 1).T
        hit = (n, S_y, S, RtR, Rty)
        for x in hit:
            x.setflags(write=False)
        data.cache["fixed"] = hit
    return hit


def _sd_y(data: StreamedData) -> float:
    """``sd(y_obs)`` (population SD, as ``np.std``: a second pass about the mean), 1
    where there is none; kept."""
    hit = data.cache.get("sd_y")
    if hit is None:
        n = data.n_obs
        if n <= 1:
            hit = 1.0
        else:
            ybar = float(_fixed_sums(data)[1].sum()) / n
            ss = 0.0
            for lo, hi, *_ in data.parts:
                d = np.where(data.observed[lo:hi], data.y[lo:hi] - ybar, 0.0)
                ss += float(d @ d)
            hit = float(np.sqrt(ss / n)) or 1.0
        data.cache["sd_y"] = hit
    return hit


def _solve(XtX: np.ndarray, Xty: np.ndarray) -> np.ndarray:
    """Least squares from the normal equations (a pseudo-inverse where they are singular)."""
    if not Xty.size:
        return np.zeros(0)
    try:
        return solve_spd(XtX, Xty)[0]
    except np.linalg.LinAlgError:
        return np.linalg.pinv(XtX, hermitian=True) @ Xty


def _pass(
    data: StreamedData,
    u: np.ndarray,
    bw: np.ndarray,
    keep: bool = False,
    rows: str = "mis",
    by_cluster: bool = False,
) -> tuple[np.ndarray | float, np.ndarray | None]:
    """One pass over the rows with the predictor ``f = R bw + u_j``: the sum of squares
    of ``y - f`` over the observed rows (``by_cluster``: each cluster's) and (``keep``)
    ``f`` on the ``rows`` (``"mis"`` or ``"obs"``: then no sum) in their order."""
    ss = np.zeros(data.n_clusters) if by_cluster else 0.0
    out = None
    if keep:
        out = np.empty(data.n_mis if rows == "mis" else data.n_obs)
    k = 0
    for part in data.parts:
        lo, hi, a, b, starts, counts = part
        w = data.observed[lo:hi]
        fit = np.repeat(u[a:b], counts)
        tmp = np.empty_like(fit) if bw.size else None
        for col, beta in zip(data.columns(part, raw=True), bw, strict=True):
            fit += np.multiply(col, beta, out=tmp)  # ints cast as they are read
        if keep:
            pick = np.logical_not(w) if rows == "mis" else w
            size = int(np.count_nonzero(pick))
            np.compress(pick, fit, out=out[k : k + size])
            k += size
            if rows == "obs":
                continue
        r = np.subtract(data.response(lo, hi), fit, out=fit)
        r *= w  # the observed rows' residuals, 0 elsewhere
        if by_cluster:
            ss[a:b] = np.add.reduceat(np.square(r, out=r), starts)
        else:
            ss += float(r @ r)
    return ss, out


def _moments(
    data: StreamedData, stats: _ClusterStats, beta: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, float]:
    """:func:`~mlimpute.models.ml_norm_start._moments` for a random intercept: each
    cluster's mean residual b̂_j (clusters of more than two observed rows), σ² the pooled
    within-cluster variance, ``Ψ ≈ var(b̂) − σ²·mean(1/n_j)`` clipped to
    [(0.05 A)², A²]."""
    n = _fixed_sums(data)[0]
    Ztr = (stats.Zty - stats.ZtX @ beta)[:, 0]  # the clusters' residual sums
    ok = n > 2
    floor, cap = (0.05 * scale) ** 2, scale**2
    tiny = (1e-12 * float(np.min(scale))) ** 2
    u0 = stats.M @ beta[data.constant]
    bw = beta[data.within]
    N = max(data.n_obs, 1)

    def residual_var() -> float:  # np.var of the residuals y - Xβ
        return max(_pass(data, u0, bw)[0] / N - (float(Ztr.sum()) / N) ** 2, tiny)

    if ok.sum() < 3:
        return np.diag((0.5 * scale) ** 2), residual_var()
    bhat = np.where(ok, Ztr / np.where(ok, n, 1.0), 0.0)
    ss = _pass(data, u0 + bhat, bw, by_cluster=True)[0]
    dof = max(int(n[ok].sum()) - int(ok.sum()), 1)
    sigma2 = float(ss[ok].sum()) / dof
    if not sigma2 > 0:
        sigma2 = residual_var()
    d = bhat[ok].var(ddof=1) - sigma2 * float(np.mean(1.0 / n[ok]))
    return np.diag(np.clip(np.atleast_1d(d), floor, cap)), sigma2
