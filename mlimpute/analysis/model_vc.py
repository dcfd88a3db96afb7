"""The variance components of an analysis model's fits.

Names (``var(x|g)``, ``cov(Intercept,x|g)``, ``var(Residual)``, ``ICC|g``) and values of
the random-effect (co)variances, the residual variance and the intra-class correlations.
``_VarianceComponents`` is a base class of :class:`~mlimpute.analysis.model._Model` and
reads the random design it stored (names, blocks, grouping factors).
"""

from __future__ import annotations

import numpy as np

from mlimpute.analysis.fitters import mixedlm as _mixedlm

#: Residual variance of the latent-scale response of a binary GLMM, for its ICC.
_LATENT_VARIANCE = {"logit": np.pi**2 / 3.0, "probit": 1.0}


class _VarianceComponents:
    """The variance components of a :class:`~mlimpute.analysis.model._Model`'s fits."""

    # -- variance components --------------------------------------------------------------
    def vc_names(self) -> tuple[str, ...] | None:
        if self.kind == "ols":
            return ("var(Residual)",)
        if self.kind not in ("lmm", "glmm"):
            return None
        if self.multi:
            return self._vc_names_multi()
        g, rn = self.cluster, self.random_names
        mask = self._mask()
        names = []
        for a in range(len(rn)):
            for b in range(a, len(rn)):
                if mask[a, b]:
                    names.append(f"var({rn[a]}|{g})" if a == b else f"cov({rn[a]},{rn[b]}|{g})")
        if self.kind == "lmm":
            names.append("var(Residual)")
        if "Intercept" in rn and self._latent_variance() is not None:
            names.append(f"ICC|{g}")
        return tuple(names)

    def _vc_names_multi(self) -> tuple[str, ...]:
        """Several grouping factors: each factor's (co)variances (``var(x|school)``,
        ``cov(Intercept,x|school:class)``), ``var(Residual)``, then ``ICC|factor`` for
        each factor with a random intercept."""
        rn, lab = self.random_names, self.random_labels
        mask = self._mask()
        names = []
        for a in range(len(rn)):
            for b in range(a, len(rn)):
                if mask[a, b]:
                    g = lab[a]
                    names.append(f"var({rn[a]}|{g})" if a == b else f"cov({rn[a]},{rn[b]}|{g})")
        names.append("var(Residual)")
        names += [f"ICC|{g}" for g, _ in self._intercepts()]
        return tuple(names)

    def _intercepts(self) -> list[tuple[str, int]]:
        """``(factor, column)`` of each grouping factor's random intercept."""
        return [
            (g, j)
            for j, (n, g) in enumerate(zip(self.random_names, self.random_labels, strict=True))
            if n == "Intercept"
        ]

    def _latent_variance(self) -> float | None:
        """Level-1 variance for the ICC: residual (LMM), latent (binary GLMM), else None."""
        if self.kind == "lmm":
            return np.nan  # the fit's own residual variance
        if self.kind == "glmm" and self.family[0] == "binomial":
            return _LATENT_VARIANCE[self.family[1]]
        return None

    def _mask(self) -> np.ndarray:
        q = len(self.random_names)
        if self.multi:
            return _mixedlm.block_mask([b for blocks in self.term_blocks for b in blocks])
        return np.ones((q, q), bool) if self.blocks is None else _mixedlm.block_mask(self.blocks)

    def vc_values(self, f) -> np.ndarray:
        if isinstance(f, _mixedlm.OLSFit):
            n = f.df_resid + f.params.size
            return np.array([f.sigma2_ml * n / f.df_resid])
        iu = np.triu_indices(len(self.random_names))
        keep = self._mask()[iu]
        values = list(f.cov_re[iu][keep])
        if self.multi:
            # ICC per level: that level's intercept variance over the total of the
            # intercept variances and the residual variance (variance partition)
            ints = [j for _, j in self._intercepts()]
            total = sum(f.cov_re[j, j] for j in ints) + f.scale
            return np.array(values + [f.scale] + [f.cov_re[j, j] / total for j in ints])
        level1 = self._latent_variance()
        if self.kind == "lmm":
            values.append(f.scale)
            level1 = f.scale
        if "Intercept" in self.random_names and level1 is not None:
            j = self.random_names.index("Intercept")
            values.append(f.cov_re[j, j] / (f.cov_re[j, j] + level1))
        return np.array(values)
