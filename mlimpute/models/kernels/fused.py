"""The compiled step fused with what surrounds it: a random intercept's sums and the
step in one call (:func:`step_intercept`), and those with the missing values' draws,
placement and trace (:func:`step_draw_place`).

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.draws import _draws
from mlimpute.models.kernels.options import jit
from mlimpute.models.kernels.refresh import place_draws
from mlimpute.models.kernels.step import step
from mlimpute.models.kernels.sums import _intercept_sums

__all__ = ["step_draw_place", "step_intercept"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def step_intercept(  # pragma: no cover - compiled
    gens,
    XTs,
    xk,
    y,
    codes,
    ZT,
    ZtZ,
    Zty,
    split,
    ZtX,
    kept,
    s2_in,
    psi_in,
    alpha_in,
    scale_in,
    floor,
    beta_in,
    nu,
    mh_steps,
    mh_step,
    bidx,
    bptr,
    ones,
    XT0,
    dmask,
    yty,
):
    """:func:`~mlimpute.models.kernels.sums._intercept_sums` (its arguments after ``XTs``
    and ``y`` in the tuple ``split``, then ``ZtX`` and ``kept``) and
    :func:`~mlimpute.models.kernels.step.step` on its sums, in one call: the sums are
    still in the cache when the step reads them."""
    ZtX, XtX, Xty = _intercept_sums(
        XTs,
        y,
        split[0],
        split[1],
        split[2],
        split[3],
        split[4],
        split[5],
        split[6],
        split[7],
        split[8],
        split[9],
        split[10],
        split[11],
        split[12],
        ZtX,
        kept,
    )
    return step(
        gens,
        XTs,
        xk,
        y,
        codes,
        ZT,
        ZtZ,
        Zty,
        ZtX,
        XtX,
        Xty,
        s2_in,
        psi_in,
        alpha_in,
        scale_in,
        floor,
        beta_in,
        nu,
        mh_steps,
        mh_step,
        bidx,
        bptr,
        ones,
        XT0,
        dmask,
        yty,
    )


@jit
def step_draw_place(  # pragma: no cover - compiled
    gens,
    XTs,
    xk,
    y,
    codes,
    ZT,
    ZtZ,
    Zty,
    split,
    ZtX,
    kept,
    s2_in,
    psi_in,
    alpha_in,
    scale_in,
    floor,
    beta_in,
    nu,
    mh_steps,
    mh_step,
    bidx,
    bptr,
    ones,
    XT0,
    dmask,
    yty,
    XmTs,
    codes_mis,
    ZmT,
    XmT0,
    dmask_mis,
    unit,
    ones_mis,
    x,
    mis_idx,
    mean,
    sd,
):
    """:func:`step_intercept`, then (where the step succeeded)
    :func:`~mlimpute.models.kernels.draws.draw_place` from the new β, b and σ², in one
    call; returns the step's results."""
    got = step_intercept(
        gens,
        XTs,
        xk,
        y,
        codes,
        ZT,
        ZtZ,
        Zty,
        split,
        ZtX,
        kept,
        s2_in,
        psi_in,
        alpha_in,
        scale_in,
        floor,
        beta_in,
        nu,
        mh_steps,
        mh_step,
        bidx,
        bptr,
        ones,
        XT0,
        dmask,
        yty,
    )
    if got[7] == 0:
        draws = np.empty((len(gens), XmTs[0].shape[1]))
        _draws(
            gens,
            XmTs,
            xk,
            codes_mis,
            ZmT,
            got[0],
            got[2],
            got[4],
            XmT0,
            dmask_mis,
            unit,
            ones_mis,
            draws,
        )
        place_draws(x, mis_idx, draws, mean, sd)
    return got
