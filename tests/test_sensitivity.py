"""δ-adjustment (``impute(delta=...)``) and ``mlimpute.sensitivity``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import importlib

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import SpecificationError, UnsupportedError

F1 = {"y": "~ x + (1 | g)"}
ANALYSIS = "y ~ x + (1 | g)"


def _data(seed: int = 3, n_clusters: int = 12, size: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    n = g.size
    x = rng.standard_normal(n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.5, n_clusters)[g] + rng.standard_normal(n)
    z = 0.3 * y + rng.standard_normal(n)
    b = pd.Series(rng.random(n) < 0.5, dtype="boolean")
    df = pd.DataFrame({"g": g, "x": x, "y": y, "z": z, "b": b})
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    df.loc[rng.random(n) < 0.2, "z"] = np.nan
    df.loc[rng.random(n) < 0.2, "b"] = np.nan
    return df


def _one() -> pd.DataFrame:
    """Only y is incomplete."""
    return _data()[["g", "x", "y"]]


def test_shift_of_a_single_incomplete_variable_is_exactly_delta():
    # y is the only imputed variable and its model is fitted on its observed rows, so the
    # shifted run draws the same values plus δ: no Monte Carlo error, only rounding
    df = _one()
    before = df.copy()
    kw = dict(m=3, iterations=4, rng=5)
    plain = mlimpute.impute(df, F1, **kw)
    shifted = mlimpute.impute(df, F1, delta={"y": -0.7}, **kw)
    diff = shifted.dataset["y"].to_numpy() - plain.dataset["y"].to_numpy()
    np.testing.assert_allclose(diff, -0.7, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(df, before)  # the user's data untouched
    obs = df["y"].notna()
    for k in range(3):
        c = shifted.complete(k)
        np.testing.assert_array_equal(c.loc[obs, "y"], df.loc[obs, "y"])
    assert shifted.spec.delta == (("y", -0.7),)
    assert "delta" in repr(shifted.spec) and "y -0.7" in repr(shifted.spec)


def test_shift_feeds_the_other_models_and_keeps_observed_values():
    df = _data()[["g", "x", "y", "z"]]
    f = {"y": "~ x + z + (1 | g)", "z": "~ x + y + (1 | g)"}
    kw = dict(m=3, iterations=4, rng=2)
    plain = mlimpute.impute(df, f, **kw)
    shifted = mlimpute.impute(df, f, delta={"y": 2.0}, **kw)
    # z's model regresses on the (shifted) y: its imputations move up (slope ~0.3 > 0);
    # 2 × 0.3 × share of z's missing rows with y missing is far above the MC noise of a
    # mean of ~70 draws, but the direction is all that is asserted
    dz = shifted.dataset["z"].to_numpy().mean() - plain.dataset["z"].to_numpy().mean()
    assert dz != 0.0
    dy = shifted.dataset["y"].to_numpy().mean() - plain.dataset["y"].to_numpy().mean()
    # the mean shift of y is δ plus what z's change feeds back (z's slope in y's model is
    # small): within 0.5 of δ = 2 (the SD of y's imputations is ~1.2, so the MC error of a
    # mean of 3 × ~36 draws of two runs is ~0.2)
    assert abs(dy - 2.0) < 0.5
    for k in range(3):
        c = shifted.complete(k)
        for col in ("y", "z"):
            obs = df[col].notna()
            np.testing.assert_array_equal(c.loc[obs, col], df.loc[obs, col])


def test_zero_delta_is_bit_identical():
    df = _one()
    kw = dict(m=2, iterations=3, rng=9)
    a = mlimpute.impute(df, F1, **kw)
    b = mlimpute.impute(df, F1, delta={"y": 0.0}, **kw)
    assert a.dataset.identical(b.dataset)
    assert a.spec == b.spec


def test_delta_survives_a_netcdf_file(tmp_path):
    df = _one()
    imp = mlimpute.impute(df, F1, m=2, iterations=2, rng=1, delta={"y": 0.25})
    path = tmp_path / "s.nc"
    imp.to_netcdf(path)
    back = mlimpute.open(path)
    assert back.spec.delta == (("y", 0.25),)
    assert back.iterate(1).spec.delta == (("y", 0.25),)


def test_delta_in_a_toml_specification_file():
    # the shifts are written as options of impute() and read back: the same run, bit for bit
    from mlimpute.specfile import loads_spec

    df = _one()
    kw = dict(m=2, iterations=2, rng=1, delta={"y": 0.25}, delta_cluster_sd={"y": 0.5})
    imp = mlimpute.impute(df, F1, **kw)
    text = imp.spec.to_toml(data="d.csv")
    assert "[imputation.options.delta]" in text and "y = 0.25" in text
    again = loads_spec(text).impute(df)
    assert again.spec.delta == (("y", 0.25),)
    assert again.spec.delta_cluster_sd == (("y", 0.5),)
    assert again.dataset.identical(imp.dataset)


@pytest.mark.parametrize(
    ("delta", "error", "match"),
    [
        ({"nope": 1.0}, SpecificationError, "unknown column 'nope'"),
        ({"y": "a lot"}, SpecificationError, "delta for 'y' must be a number"),
        ({"y": True}, SpecificationError, "delta for 'y' must be a number"),
        ({"y": float("nan")}, SpecificationError, "finite"),
        ({"x": 1.0}, SpecificationError, "'x', which is not imputed"),
        ([("y", 1.0)], SpecificationError, "delta must be a dict"),
    ],
)
def test_bad_delta_is_refused_before_chains(delta, error, match, monkeypatch):
    mod = importlib.import_module("mlimpute.impute")  # the module, not the function

    def no_chains(*a, **k):  # a chain must not start
        raise AssertionError("chains started")

    monkeypatch.setattr(mod, "map_chains", no_chains)
    df = _data()
    with pytest.raises(error, match=match):
        mlimpute.impute(df, cluster="g", delta=delta, m=2, iterations=2, rng=1)


def test_delta_with_model_based_imputation_shifts_the_outcome():
    # the analysis model's parameters use the observed outcomes only: with y the only
    # incomplete variable the shifted run is the plain one plus δ, exactly up to rounding
    kw = dict(model=ANALYSIS, m=2, iterations=3, rng=1)
    plain = mlimpute.impute(_one(), **kw)
    shifted = mlimpute.impute(_one(), delta={"y": 1.0}, **kw)
    np.testing.assert_allclose(
        shifted.dataset["y"].values - plain.dataset["y"].values, 1.0, atol=1e-12
    )


def test_sensitivity_table_and_zero_equals_plain_analysis():
    df = _one()
    kw = dict(m=3, iterations=3, rng=4)
    deltas = [-1, -0.5, 0, 0.5]
    res = mlimpute.sensitivity(df, F1, delta={"y": deltas}, analysis=ANALYSIS, **kw)
    t = res.table
    assert list(t.columns) == ["delta", "term", "estimate", "se", "ci_low", "ci_high", "p"]
    assert len(t) == len(deltas) * 2
    assert sorted(t.groupby(["delta", "term"]).size().index) == sorted(
        (float(d), term) for d in deltas for term in ("Intercept", "x")
    )
    plain = df.mi.impute(F1, **kw).fit(ANALYSIS).summary()
    zero = t[t["delta"] == 0].set_index("term")
    for col in ("estimate", "se", "ci_low", "ci_high", "p"):
        np.testing.assert_array_equal(zero[col].to_numpy(), plain[col].to_numpy())
    # the intercept moves by δ × (share of y imputed), up to rounding: y alone is imputed
    icpt = t[t["term"] == "Intercept"].set_index("delta")["estimate"]
    assert icpt.is_monotonic_increasing


def test_sensitivity_plot_returns_axes():
    df = _one()
    res = mlimpute.sensitivity(
        df, F1, delta={"y": [-1, 0]}, analysis=ANALYSIS, m=2, iterations=2, rng=1
    )
    ax = res.plot("x")
    assert isinstance(ax, matplotlib.axes.Axes)
    assert len(ax.lines) >= 3  # estimate, interval bounds, the line at 0
    with pytest.raises(SpecificationError, match="term 'w'"):
        res.plot("w")
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        (dict(delta={"nope": [1.0]}), SpecificationError, "unknown column 'nope'"),
        (dict(delta={"y": [0, "x"]}), SpecificationError, "must be a number"),
        (dict(delta={"x": [1.0]}), SpecificationError, "not imputed"),
        (dict(delta={"y": [1], "z": [1]}), SpecificationError, "one variable"),
        (dict(delta={"y": [1, 1]}), SpecificationError, "repeats"),
        (dict(delta={"y": [1]}, analysis="y ~ w"), SpecificationError, "unknown column"),
        (dict(delta={"y": [1]}, model=ANALYSIS), UnsupportedError, "formulas= cannot"),
    ],
)
def test_sensitivity_bad_input_is_refused_before_chains(kw, error, match, monkeypatch):
    mod = importlib.import_module("mlimpute.impute")  # the module, not the function

    def no_chains(*a, **k):
        raise AssertionError("chains started")

    monkeypatch.setattr(mod, "map_chains", no_chains)
    kw = {"analysis": ANALYSIS, **kw}
    with pytest.raises(error, match=match):
        mlimpute.sensitivity(_one(), F1, m=2, iterations=2, rng=1, **kw)


def _integer_y() -> pd.DataFrame:
    """y as an Int64 count (non-negative, many values): imputed by 2l.pmm by default."""
    df = _one()
    return df.assign(y=pd.array(np.round(100 + 10 * df["y"]), dtype="Int64"))


@pytest.mark.parametrize(
    ("kw", "bad"),
    [
        (dict(delta={"y": [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1]}), "-0.75"),
        (dict(delta={"y": [-2, -1, 0, 1, 2.5]}), "2.5"),
        (dict(delta={"y": [-1, 0, 1]}, delta_cluster_sd={"y": 0.5}), "delta_cluster_sd"),
    ],
)
def test_sensitivity_grid_refuses_fractional_shifts_of_an_integer_pmm_column(kw, bad, monkeypatch):
    # the largest shift of a 0.25-step grid is whole: every shift is checked before any chain
    mod = importlib.import_module("mlimpute.impute")

    def no_chains(*a, **k):
        raise AssertionError("chains started")

    monkeypatch.setattr(mod, "map_chains", no_chains)
    with pytest.raises(SpecificationError, match="integer column") as e:
        mlimpute.sensitivity(_integer_y(), F1, analysis=ANALYSIS, m=2, iterations=2, rng=1, **kw)
    msg = str(e.value)
    assert bad in msg and "'y'" in msg and "'2l.pmm'" in msg
    assert "whole-number shifts" in msg or "per-cluster" in msg


def test_sensitivity_grid_of_whole_shifts_of_an_integer_pmm_column_runs():
    res = mlimpute.sensitivity(
        _integer_y(), F1, delta={"y": [-1, 0, 2]}, analysis=ANALYSIS, m=2, iterations=2, rng=1
    )
    est = res.table[res.table.term == "Intercept"].set_index("delta")["estimate"]
    assert est[-1.0] < est[0.0] < est[2.0]


def test_sensitivity_same_chains_for_a_generator():
    df = _one()
    gen = np.random.default_rng(11)
    res = mlimpute.sensitivity(
        df, F1, delta={"y": [0, 1]}, analysis=ANALYSIS, m=2, iterations=2, rng=gen
    )
    a, b = res.results[0.0], res.results[1.0]
    # same random numbers: only the intercept moves (by δ × share imputed), x's slope
    # estimate changes only through the shifted rows' x values
    assert a.summary()["estimate"]["Intercept"] < b.summary()["estimate"]["Intercept"]


def test_cluster_level_shift():
    df = _one()
    kw = dict(m=3, iterations=3, rng=6)
    plain = mlimpute.impute(df, F1, **kw)
    zero = mlimpute.impute(df, F1, delta_cluster_sd={"y": 0.0}, **kw)
    assert zero.dataset.identical(plain.dataset)
    shifted = mlimpute.impute(df, F1, delta={"y": 1.0}, delta_cluster_sd={"y": 0.5}, **kw)
    # only y is imputed, so each imputed value moves by δ + u_j exactly: one shift per
    # cluster and chain (rounding only), different between clusters
    diff = shifted.dataset["y"].to_numpy() - plain.dataset["y"].to_numpy()
    g = df.loc[df["y"].isna(), "g"].to_numpy()
    u = []
    for k in range(3):
        per = pd.Series(diff[k]).groupby(g)
        assert (per.max() - per.min()).max() < 1e-12
        u.extend(per.first().to_numpy() - 1.0)
    u = np.asarray(u)
    # 36 draws of N(0, 0.5²): the sample SD's relative SE is ~1/sqrt(70) = 0.12, so 0.5
    # ± 3.5 SE is (0.29, 0.71); the mean's SE is 0.5/6 = 0.083, 3.5 SE = 0.29
    assert 0.29 < u.std(ddof=1) < 0.71
    assert abs(u.mean()) < 0.29
    # continuing the chain draws the same cluster shifts: bit-identical to the longer run
    longer = mlimpute.impute(
        df, F1, delta={"y": 1.0}, delta_cluster_sd={"y": 0.5}, m=3, iterations=5, rng=6
    )
    assert shifted.iterate(2).dataset["y"].identical(longer.dataset["y"])


@pytest.mark.parametrize(
    ("sd", "match"),
    [
        ({"y": -1.0}, "≥ 0"),
        ({"y": "big"}, "delta_cluster_sd for 'y' must be a number"),
        ({"x": 1.0}, "delta_cluster_sd names 'x'"),
    ],
)
def test_bad_cluster_sd_is_refused(sd, match):
    with pytest.raises(SpecificationError, match=match):
        mlimpute.impute(_one(), F1, delta_cluster_sd=sd, m=2, iterations=2, rng=1)


def test_cluster_sd_needs_clusters():
    with pytest.raises(SpecificationError, match="needs clusters"):
        mlimpute.impute(_one(), {"y": "~ x"}, delta_cluster_sd={"y": 1.0}, m=2, iterations=2, rng=1)


# -- shifts on the latent scale (categorical models) and the log scale (count models) --------
def _categorical(seed: int = 5, J: int = 15, n_j: int = 12) -> pd.DataFrame:
    """x complete; b binary, o ordered (4 levels), c nominal (3 levels), k a count."""
    g = np.random.default_rng(seed)
    cls = np.repeat(np.arange(J), n_j)
    x = g.standard_normal(cls.size)
    u = 0.5 * g.standard_normal(J)[cls]
    eta = 0.3 + 0.8 * x + u
    b = pd.Series(eta + g.standard_normal(cls.size) > 0, dtype="boolean")
    o = pd.Categorical(
        np.digitize(eta + g.standard_normal(cls.size), [-0.5, 0.5, 1.5]), ordered=True
    )
    c = np.array(["p", "q", "r"], dtype=object)[g.integers(0, 3, cls.size)]
    k = g.poisson(np.exp(0.5 + 0.3 * x + u)).astype(float)
    df = pd.DataFrame({"g": cls, "x": x, "b": b, "o": o, "c": c, "k": k})
    return df


def _only(df: pd.DataFrame, col: str, share: float = 0.4) -> pd.DataFrame:
    """``col`` incomplete (every other column complete)."""
    out = df[["g", "x", col]].copy()
    out.loc[np.random.default_rng(1).random(len(out)) < share, col] = None
    return out


@pytest.mark.parametrize(
    ("col", "method"),
    [
        ("b", "2l.bin"),
        ("b", "logit"),
        ("o", "2l.ordinal"),
        ("o", "ordinal"),
        ("k", "2l.poisson"),
    ],
)
def test_latent_shift_moves_every_draw_one_way(col, method):
    # the only incomplete variable: its model is fitted on the observed rows, so the runs
    # with and without the shift take the same steps and the same random numbers; a shift of
    # the linear predictor can then only move each draw up (never down) for δ > 0 and down
    # for δ < 0 -- exact, no Monte Carlo error
    df = _only(_categorical(), col)
    f = {col: "~ x + (1 | g)" if method.startswith("2l") else "~ x"}
    kw = dict(m=2, iterations=3, rng=4, method={col: method})
    plain = mlimpute.impute(df, f, **kw).dataset[col].to_numpy()
    up = mlimpute.impute(df, f, delta={col: 1.5}, **kw).dataset[col].to_numpy()
    down = mlimpute.impute(df, f, delta={col: -1.5}, **kw).dataset[col].to_numpy()
    if method == "2l.poisson":  # Poisson draws of a larger mean from the same numbers need
        # not be larger one by one; on average they are e^1.5 = 4.5 times as large
        assert up.mean() > 2.5 * plain.mean() > 2.5**2 * down.mean()
        return
    assert (up >= plain).all() and (up > plain).any()
    assert (down <= plain).all() and (down < plain).any()


def test_nominal_shift_moves_draws_away_from_the_reference_category():
    # δ is added to the utility of every category but the first ("p"): with the same random
    # numbers a draw that was not "p" stays not "p", and some "p" draws become another
    df = _only(_categorical(), "c")
    kw = dict(m=2, iterations=3, rng=4, method={"c": "2l.nominal"})
    f = {"c": "~ x + (1 | g)"}
    plain = mlimpute.impute(df, f, **kw).dataset["c"].to_numpy()
    up = mlimpute.impute(df, f, delta={"c": 2.0}, **kw).dataset["c"].to_numpy()
    assert ((plain > 0) <= (up > 0)).all() and ((up > 0) & (plain == 0)).any()


def test_latent_zero_shift_is_bit_identical():
    df = _only(_categorical(), "b")
    kw = dict(m=2, iterations=2, rng=3)
    a = mlimpute.impute(df, {"b": "~ x + (1 | g)"}, **kw)
    b = mlimpute.impute(df, {"b": "~ x + (1 | g)"}, delta={"b": 0.0}, **kw)
    assert a.dataset.identical(b.dataset)


def test_latent_shift_needs_an_intercept():
    df = _only(_categorical(), "b")
    with pytest.raises(SpecificationError, match="intercept"):
        mlimpute.impute(df, {"b": "~ 0 + x + (1 | g)"}, delta={"b": 1.0}, m=1, iterations=1)
    with pytest.raises(SpecificationError, match="random intercept"):
        mlimpute.impute(
            df, {"b": "~ x"}, cluster="g", delta_cluster_sd={"b": 1.0}, m=1, iterations=1
        )
    with pytest.raises(UnsupportedError, match="delta for 'b'"):  # matching draws donors
        mlimpute.impute(df, {"b": "~ x"}, method={"b": "pmm"}, delta={"b": 1.0}, m=1)


@pytest.mark.parametrize("method", ["2l.bin", "2l.poisson"])
def test_latent_cluster_shift_moves_each_cluster_by_its_own_shift(method):
    # per-cluster shifts are added to the clusters' random intercepts on the latent (log)
    # scale; with the only incomplete variable the runs share steps and random numbers, so
    # in a cluster whose shift is positive every binary draw is at least the unshifted one
    # and in one whose shift is negative at most (exact); counts: on average
    from mlimpute.sampler.engine import build_plan, cluster_shifts

    col = "b" if method == "2l.bin" else "k"
    df = _only(_categorical(), col)
    f = {col: "~ x + (1 | g)"}
    kw = dict(m=2, iterations=3, rng=4, method={col: method})
    plain = mlimpute.impute(df, f, **kw)
    shifted = mlimpute.impute(df, f, delta_cluster_sd={col: 2.0}, **kw)
    plan = build_plan(df, shifted.spec)
    rows = shifted.dataset[f"{col}:row"].to_numpy()
    codes = plan.layout.codes[np.argsort(plan.layout.order)][rows]  # cluster of each cell
    for k in range(2):
        u = cluster_shifts(plan, shifted.chains[k].seed)[col][codes]
        a = plain.dataset[col].to_numpy()[k]
        b = shifted.dataset[col].to_numpy()[k]
        if method == "2l.bin":
            assert (b[u > 0] >= a[u > 0]).all() and (b[u < 0] <= a[u < 0]).all()
            assert (b != a).any()
        else:
            assert b[u > 1].mean() > 2 * a[u > 1].mean()
            assert b[u < -1].mean() < a[u < -1].mean() / 2


# -- model-based imputation (model=) --------------------------------------------------------
MODEL = "y ~ x + (1 + x | g)"


def _x_missing(seed: int = 5) -> pd.DataFrame:
    """x incomplete (25 %), y incomplete (15 %): a model-based imputation's predictor."""
    rng = np.random.default_rng(seed)
    df = _data(seed)[["g", "x", "y"]].copy()
    df["y"] = 1.0 + 0.5 * df["x"] + rng.standard_normal(len(df))
    df.loc[rng.random(len(df)) < 0.25, "x"] = np.nan
    df.loc[rng.random(len(df)) < 0.15, "y"] = np.nan
    return df


def test_sensitivity_with_model_defaults_to_the_model_and_zero_is_plain():
    df = _x_missing()
    kw = dict(m=2, iterations=4, rng=6)
    res = mlimpute.sensitivity(df, model=MODEL, delta={"x": [-1, 0, 1]}, **kw)
    assert res.analysis == MODEL and res.variable == "x"
    t = res.table
    assert len(t) == 3 * 2
    plain = df.mi.impute(model=MODEL, **kw).fit().summary()
    zero = t[t["delta"] == 0].set_index("term")
    for col in ("estimate", "se", "ci_low", "ci_high", "p"):
        np.testing.assert_array_equal(zero[col].to_numpy(), plain[col].to_numpy())
    # shifting the imputed x up lowers the intercept (y's observed rows are explained by
    # larger x): δ = -1 > δ = 0 > δ = 1
    icpt = t[t["term"] == "Intercept"].set_index("delta")["estimate"]
    assert icpt.is_monotonic_decreasing, icpt
    ax = res.plot("x")
    assert isinstance(ax, matplotlib.axes.Axes)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_sensitivity_with_model_other_analysis_and_cluster_sd():
    df = _x_missing()
    res = mlimpute.sensitivity(
        df,
        model=MODEL,
        delta={"y": [0, 2]},
        analysis="y ~ x + (1 | g)",
        delta_cluster_sd={"y": 0.5},
        m=2,
        iterations=3,
        rng=2,
    )
    icpt = res.table[res.table["term"] == "Intercept"].set_index("delta")["estimate"]
    assert icpt[2.0] > icpt[0.0]


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        (dict(delta={"g": [1.0]}), SpecificationError, "not imputed"),
        (dict(delta={"x": [1.0]}, model="y ~ x + (1 | nope)"), SpecificationError, "nope"),
        (dict(delta={"x": [1.0]}, analysis=None, model=None), SpecificationError, "analysis"),
        (dict(delta={"x": [1.0]}, auxiliary=["w"]), SpecificationError, "'w'"),
    ],
)
def test_sensitivity_with_model_bad_input_is_refused_before_chains(kw, error, match, monkeypatch):
    mod = importlib.import_module("mlimpute.impute")

    def no_chains(*a, **k):
        raise AssertionError("chains started")

    monkeypatch.setattr(mod, "map_chains", no_chains)
    kw = {"model": MODEL, **kw}
    with pytest.raises(error, match=match):
        mlimpute.sensitivity(_x_missing(), m=2, iterations=2, rng=1, **kw)


def test_sensitivity_with_model_refuses_an_ordinal_predictor_by_name():
    df = _data()[["g", "x", "y"]].copy()
    r = np.random.default_rng(2)
    levels = pd.CategoricalDtype(["lo", "mid", "hi"], ordered=True)
    df["o"] = pd.Series(pd.Categorical.from_codes(r.integers(0, 3, len(df)), dtype=levels))
    df.loc[r.random(len(df)) < 0.2, "o"] = np.nan
    with pytest.raises(UnsupportedError, match="categorical predictor 'o'"):
        mlimpute.sensitivity(
            df, model="y ~ x + o + (1 | g)", delta={"o": [0, 1]}, m=2, iterations=2
        )


def test_sensitivity_with_model_shifts_a_binary_predictor():
    df = _data()[["g", "x", "y", "b"]]
    kw = dict(m=2, iterations=3, rng=1)
    res = mlimpute.sensitivity(df, model="y ~ x + b + (1 | g)", delta={"b": [-2, 0, 2]}, **kw)
    plain = df.mi.impute(model="y ~ x + b + (1 | g)", **kw).fit().summary()
    t = res.table.set_index(["delta", "term"])["estimate"]
    np.testing.assert_array_equal(t[0.0].to_numpy(), plain["estimate"].to_numpy())
    assert t[-2.0]["b"] != t[2.0]["b"]


@pytest.mark.parametrize("arg", ["delta", "delta_cluster_sd"])
@pytest.mark.parametrize(
    "option", [{"transform": {"inc": "log"}}, {"bounds": {"inc": (0.0, 100.0)}}]
)
def test_a_shift_with_a_range_keeping_transform_is_refused(arg, option):
    """The shift would be added after the back-transform and could leave the range."""
    from mlimpute.datasets import classroom

    df = classroom(1, rng=1).incomplete
    df["inc"] = np.exp(df.pop("grade") / 10)
    f = {"inc": "~ skill + (1 | class)"}
    with pytest.raises(UnsupportedError, match=rf"{arg} for 'inc' with transform"):
        mlimpute.impute(df, f, m=1, iterations=1, rng=1, **{arg: {"inc": 1.0}}, **option)
    mlimpute.impute(df, f, m=1, iterations=1, rng=1, delta={"inc": 1.0},
                    transform={"inc": "yeo-johnson"})  # fmt: skip
