"""imp.impute_new(new_df): new rows completed with the final model states of each chain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.errors import DataError, DataTypeError, SpecificationError, UnsupportedError

F = {"grade": "~ skill + (1 | class)"}


@pytest.fixture(scope="module")
def df():
    return classroom(1, rng=1).incomplete


@pytest.fixture(scope="module")
def imp(df):
    return mlimpute.impute(df, F, m=2, iterations=5, rng=1)


def _new_rows(df, n, cls, skill=0.0):
    return pd.DataFrame(
        {"class": np.asarray(cls, dtype=df["class"].dtype), "skill": skill, "grade": np.nan},
        index=pd.RangeIndex(n),
    )[list(df.columns)]


def test_shape_observed_cells_and_dtypes(df, imp):
    new = df.iloc[:10].copy()  # some grades observed, set a few missing
    new.iloc[[1, 4, 7], new.columns.get_loc("grade")] = np.nan
    before = new.copy()
    out = imp.impute_new(new, rng=3)
    pd.testing.assert_frame_equal(new, before)  # the user's frame is not modified
    assert out.m == imp.m
    for frame in out:
        assert list(frame.columns) == list(df.columns)
        assert (frame.dtypes == df.dtypes).all()
        assert frame["grade"].notna().all()
        obs = before["grade"].notna()
        # observed cells untouched, bit for bit
        got, given = frame.loc[obs, "grade"].to_numpy(), before.loc[obs, "grade"].to_numpy()
        assert np.array_equal(got, given)
        assert frame.index.equals(new.index)
    assert out.dataset["grade"].shape == (imp.m, int(before["grade"].isna().sum()))


def test_bit_identical_for_a_seed_and_after_open(df, imp, tmp_path):
    new = _new_rows(df, 8, [1, 1, 2, 2, 500, 500, 501, 502])
    a = imp.impute_new(new, rng=7)
    b = imp.impute_new(new, rng=7)
    assert a.dataset.equals(b.dataset)
    c = imp.impute_new(new, rng=8)
    assert not np.array_equal(a.dataset["grade"].values, c.dataset["grade"].values)
    path = tmp_path / "run.nc"
    imp.to_netcdf(path)
    reread = mlimpute.open(path)
    d = reread.impute_new(new, rng=7)
    np.testing.assert_array_equal(a.dataset["grade"].values, d.dataset["grade"].values)


@pytest.mark.slow
def test_bit_identical_whatever_the_executor(df, imp):
    new = _new_rows(df, 8, [1, 1, 2, 2, 500, 500, 501, 502])
    a = imp.impute_new(new, rng=7)
    b = imp.impute_new(new, rng=7, n_jobs=2)
    np.testing.assert_array_equal(a.dataset["grade"].values, b.dataset["grade"].values)


def _state(imp, k=0):
    st = imp.chains[k].states["grade"]
    return st.beta, st.b[:, 0], float(st.psi[0, 0]), float(st.sigma2)


@pytest.fixture(scope="module")
def strong():
    """A run on data with a large cluster variance (ICC about 0.8)."""
    g = np.random.default_rng(4)
    J, n_j = 30, 20
    cls = np.repeat(np.arange(J), n_j)
    skill = g.normal(size=cls.size)
    grade = 1.0 + 0.5 * skill + 2.0 * g.normal(size=J)[cls] + g.normal(size=cls.size)
    grade[g.random(cls.size) < 0.3] = np.nan
    df = pd.DataFrame({"class": cls, "skill": skill, "grade": grade})
    return df, mlimpute.impute(df, F, m=1, iterations=5, rng=11)


def test_new_clusters_have_marginal_variance_psi_plus_sigma2(strong):
    df, imp = strong
    beta, _, psi, s2 = _state(imp)
    n = 4000
    # every row in a cluster of its own, none seen in training: grade = β0 + u + e
    new = _new_rows(df, n, np.arange(10_000, 10_000 + n))
    y = imp.impute_new(new, rng=5).complete(1)["grade"].to_numpy()
    var = psi + s2
    # sample mean: SE sqrt(var/n); sample variance of normal draws: SE var*sqrt(2/(n-1));
    # 4 SE bounds (a false alarm about once in 16 000 runs)
    assert abs(y.mean() - beta[0]) < 4 * np.sqrt(var / n)
    assert abs(y.var(ddof=1) - var) < 4 * var * np.sqrt(2 / (n - 1))
    # σ² alone would fail: ψ is many SEs large here
    assert psi > 8 * var * np.sqrt(2 / (n - 1))


def test_seen_cluster_rows_centre_on_the_cluster_effect(strong):
    df, imp = strong
    beta, b, psi, s2 = _state(imp)
    n = 2000
    for j in (0, 7):
        new = _new_rows(df, n, np.full(n, j), skill=0.5)
        y = imp.impute_new(new, rng=j).complete(1)["grade"].to_numpy()
        centre = beta[0] + 0.5 * beta[1] + b[j]
        # rows of a seen cluster: mean x'β + b_j, variance σ² only (4 SE bounds); the
        # cluster effects are about ±2, far beyond the bound of about 0.09
        assert abs(y.mean() - centre) < 4 * np.sqrt(s2 / n)
        assert abs(y.var(ddof=1) - s2) < 4 * s2 * np.sqrt(2 / (n - 1))


def _two_variables(seed=3, J=25, n_j=12):
    g = np.random.default_rng(seed)
    cls = np.repeat(np.arange(J), n_j)
    u = g.normal(0, 1, J)[cls]
    x = u + g.normal(0, 1, cls.size)
    z = g.normal(size=cls.size)
    y = 0.5 * x + u + g.normal(0, 1, cls.size)
    grp = np.where(y + g.normal(size=cls.size) > 0, "hi", "lo")
    df = pd.DataFrame({"class": cls, "z": z, "x": x, "y": y, "grp": grp})
    for c, p in (("x", 0.2), ("y", 0.2), ("grp", 0.15)):
        df.loc[g.random(len(df)) < p, c] = np.nan if c != "grp" else None
    return df


def test_several_incomplete_variables_and_a_categorical_one():
    df = _two_variables()
    f = {
        "x": "~ y + z + (1 | class)",
        "y": "~ x + cmean(x) + (1 | class)",
        "grp": "~ y + (1 | class)",
    }
    imp = mlimpute.impute(df, f, m=2, iterations=4, rng=2)
    new = df.iloc[:6].copy()
    new.loc[:, ["x", "y"]] = np.nan
    new.iloc[0, new.columns.get_loc("grp")] = None
    new.iloc[3:, new.columns.get_loc("class")] = 99
    out = imp.impute_new(new, rng=4)
    assert out.spec.iterations == 10  # several incomplete variables per row: a Gibbs run
    for frame in out:
        assert frame[["x", "y", "grp"]].notna().all().all()
        assert set(frame["grp"]) <= {"hi", "lo"}
    assert imp.impute_new(new, rng=4, sweeps=3).spec.iterations == 3


def test_refusals_name_the_column(df, imp):
    new = df.iloc[:4].copy()
    with pytest.raises(DataError, match="skill"):
        imp.impute_new(new.drop(columns="skill"))
    with pytest.raises(DataError, match="extra"):
        imp.impute_new(new.assign(extra=1))
    with pytest.raises(DataTypeError, match="'skill'"):
        imp.impute_new(new.assign(skill=new["skill"].astype(str)))
    bad = new.copy()
    bad["skill"] = bad["skill"].astype(float)
    bad.iloc[0, bad.columns.get_loc("skill")] = np.nan
    with pytest.raises(DataError, match="'skill'.*no model imputes it"):
        imp.impute_new(bad)
    with pytest.raises(SpecificationError, match="sweeps"):
        imp.impute_new(new, sweeps=0)
    nostate = mlimpute.MultiplyImputed(imp.dataset, imp.data, imp.spec)
    with pytest.raises(SpecificationError, match="where every chain stopped"):
        nostate.impute_new(new)


def test_unseen_category_is_refused():
    df = _two_variables().dropna(subset=["grp"])[["class", "grp", "y"]]
    imp = mlimpute.impute(df, {"y": "~ grp + (1 | class)"}, m=1, iterations=2, rng=2)
    new = df.iloc[:3].copy()
    new.iloc[0, new.columns.get_loc("grp")] = "middle"
    new["y"] = np.nan
    with pytest.raises(DataError, match="'grp'.*middle"):
        imp.impute_new(new)


def test_level2_variable_of_new_clusters_is_drawn_once_per_cluster():
    df = _two_variables()[["class", "y"]]
    w = np.random.default_rng(1).normal(size=25)
    df["w"] = w[df["class"]]
    df.loc[df["class"].isin([0, 1]), "w"] = np.nan
    f = {"w": "~ cmean(y)", "y": "~ w + (1 | class)"}
    imp = mlimpute.impute(df, f, m=2, iterations=2, rng=1, cluster="class")
    new = df.iloc[:2].copy()
    new["w"] = np.nan
    out = imp.impute_new(new, rng=1)  # class 0: the chain's value of its cluster
    c0 = [frame["w"].iloc[0] for frame in out]
    assert all(frame["w"].nunique() == 1 for frame in out)
    chain_w0 = [imp.complete(k)["w"][df["class"] == 0].iloc[0] for k in (1, 2)]
    assert c0 == chain_w0
    # new clusters: 30 and 31 drawn (one value each), 32 given in one of its rows
    new = pd.concat([df.iloc[:9]] * 1).reset_index(drop=True)
    new["class"] = [30, 30, 30, 31, 31, 31, 32, 32, 32]
    new["w"] = [np.nan] * 6 + [np.nan, 0.75, np.nan]
    new.loc[[0, 4], "y"] = np.nan
    out = imp.impute_new(new, rng=2)
    assert out.spec.iterations == 10  # w and y incomplete in the same rows: a Gibbs run
    for frame in out:
        assert frame.groupby("class")["w"].nunique().eq(1).all()
        assert (frame.loc[6:, "w"] == 0.75).all()
        assert frame.loc[0, "w"] != frame.loc[3, "w"]
        assert frame["y"].notna().all()
    a = imp.impute_new(new, rng=2)
    assert a.dataset.identical(out.dataset)


def _kinds(seed=5, J=15, n_j=12):
    g = np.random.default_rng(seed)
    cls = np.repeat(np.arange(J), n_j)
    x = g.standard_normal(cls.size)
    u = 0.5 * g.standard_normal(J)[cls]
    eta = 0.3 + 0.8 * x + u
    return pd.DataFrame(
        {
            "g": cls,
            "x": x,
            "y": eta + g.standard_normal(cls.size),
            "b": pd.Series(eta + g.standard_normal(cls.size) > 0, dtype="boolean"),
            "o": pd.Categorical(
                np.digitize(eta + g.standard_normal(cls.size), [-0.5, 0.5, 1.5]), ordered=True
            ),
            "c": np.array(["p", "q", "r"], dtype=object)[g.integers(0, 3, cls.size)],
            "k": g.poisson(np.exp(0.5 + 0.3 * x + u)).astype(float),
        }
    )


@pytest.mark.parametrize(
    ("col", "method"),
    [
        ("y", "2l.norm.het"),
        ("y", "pmm"),
        ("b", "2l.logit"),
        ("o", "2l.ordinal"),
        ("c", "2l.nominal"),
        ("k", "2l.poisson"),
        ("k", "2l.nb"),
    ],
)
def test_every_kind_of_model_completes_new_rows(col, method):
    full = _kinds()
    d = full[["g", "x", col]].copy()
    d.loc[np.random.default_rng(1).random(len(d)) < 0.3, col] = None
    f = {col: "~ x + (1 | g)" if method.startswith("2l") else "~ x"}
    imp = mlimpute.impute(d, f, method={col: method}, m=2, iterations=2, rng=1)
    new = d.iloc[:6].copy()
    new[col] = np.nan  # a column missing throughout takes the training dtype
    new.iloc[3:, 0] = 99  # a cluster not seen in training
    out = imp.impute_new(new, rng=1)
    for frame in out:
        assert frame[col].notna().all() and frame[col].dtype == d[col].dtype
        observed = set(d[col].dropna())
        assert set(frame[col]) <= observed or col in ("y", "k")


def test_string_categories_absent_from_the_new_data_decode_as_in_training(tmp_path):
    d = _kinds()[["g", "x", "c"]].copy()
    d.loc[np.random.default_rng(1).random(len(d)) < 0.3, "c"] = None
    imp = mlimpute.impute(d, {"c": "~ x + (1 | g)"}, m=3, iterations=2, rng=1)
    new = pd.concat([d[d["c"] == "r"].iloc[:2], d.iloc[:40].assign(c=None)])
    out = imp.impute_new(new, rng=1)
    codes = out.dataset["c"].to_numpy()
    labels = np.array(["p", "q", "r"], dtype=object)
    for i, frame in enumerate(out, start=1):
        # the codes refer to the training categories, whatever the new data hold
        assert frame["c"].iloc[2:].tolist() == labels[codes[i - 1].astype(int)].tolist()
        assert frame["c"].iloc[:2].tolist() == ["r", "r"]
    assert (codes == 0).any()  # "p" is imputed though no new row has it
    with pytest.raises(UnsupportedError, match="to_csv"):
        out.to_netcdf(tmp_path / "x.nc")


@pytest.mark.parametrize("kind", ["category", "object"])
def test_cluster_means_of_a_categorical_predictor_as_in_training(kind):
    """cmean() of a complete categorical column (default models write it) is the mean of
    its codes in the training categories: the same numbers as a 0/1 column, also where the
    new rows hold one category only."""
    base = classroom(1, rng=1).incomplete
    sex = np.where(np.arange(len(base)) % 3 == 0, "m", "f")
    coded = base.assign(sex=(sex == "m").astype(float))
    labelled = base.assign(sex=pd.Series(sex).astype(kind))
    f = {"grade": "~ skill + sex + cmean(sex) + (1 | class)"}
    new = base.iloc[[0, 3, 6, 40, 43]].assign(grade=np.nan)
    out = []
    for df in (coded, labelled):
        imp = df.mi.impute(f, m=2, iterations=3, rng=1)
        nd = new.assign(sex=df["sex"].loc[new.index])
        out.append(imp.impute_new(nd, rng=2).complete(1)["grade"].to_numpy())
    np.testing.assert_array_equal(out[0], out[1])


def test_a_categorical_in_other_categories_is_read_in_the_training_ones():
    df = classroom(1, rng=1).incomplete
    df["sex"] = pd.Categorical(np.where(np.arange(len(df)) % 2, "f", "m"))
    imp = df.mi.impute({"grade": "~ skill + sex + (1 | class)"}, m=2, iterations=3, rng=1)
    new = df.iloc[:4].assign(grade=np.nan)
    same = imp.impute_new(new, rng=1).complete(1)
    new["sex"] = pd.Categorical(new["sex"].astype(str), categories=["m", "f", "x"])  # reordered
    other = imp.impute_new(new, rng=1).complete(1)
    pd.testing.assert_series_equal(same["grade"], other["grade"])
    new["sex"] = pd.Categorical(["x", "f", "m", "f"])
    with pytest.raises(DataError, match=r"'sex'.*\['x'\]"):
        imp.impute_new(new, rng=1)


def _binary_predictor(seed=0, J=20, n=6):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = r.normal(size=g.size)
    b = (x + r.normal(size=g.size) > 0).astype(float)
    y = 1 + 0.5 * x + b + r.normal(size=J)[g] + r.normal(size=g.size)
    df = pd.DataFrame({"g": g, "x": x, "y": y, "b": b})
    for c in ("x", "b", "y"):
        df.loc[r.random(g.size) < 0.2, c] = np.nan
    return df


@pytest.mark.parametrize("kw", [{"cluster": "g"}, {"model": "y ~ x + b + (1 | g)"}])
def test_a_numeric_column_modelled_as_binary_takes_only_0_and_1(kw):
    df = _binary_predictor()
    imp = df.mi.impute(m=1, iterations=2, rng=1, **kw)
    assert imp.spec.variables_by_name["b"].method == "2l.bin"
    new = pd.DataFrame({"g": [0, 0, 1], "x": np.nan, "y": 1.0, "b": [1.0, 0.0, np.nan]})
    assert imp.impute_new(new, rng=2).complete(1)["b"].isin([0.0, 1.0]).all()
    for value in (2.0, 0.5, -7.0):
        with pytest.raises(DataError, match=rf"'b'.*\[{value}\].*binary model"):
            imp.impute_new(new.assign(b=[1.0, value, np.nan]), rng=2)
    # integer dtypes too; a 0/1 column imputed as numbers (pmm) keeps any number
    with pytest.raises(DataError, match=r"'b'.*\[2\.0\]"):
        imp.impute_new(new.assign(b=pd.array([1, 2, None], dtype="Int64")), rng=2)
    if "cluster" in kw:
        pmm = df.mi.impute(method={"b": "2l.pmm"}, m=1, iterations=2, rng=1, **kw)
        assert pmm.impute_new(new.assign(b=[1.0, 2.0, np.nan]), rng=2).m == 1


def _level2_data():
    r = np.random.default_rng(0)
    J, n = 20, 6
    g = np.repeat(np.arange(J), n)
    w = r.normal(size=J)
    df = pd.DataFrame({"g": g, "w": w[g], "y": 2 * w[g] + r.normal(size=g.size)})
    df.loc[r.random(g.size) < 0.2, "y"] = np.nan
    df.loc[df["g"] == 5, "w"] = np.nan  # cluster 5's value imputed by the chains
    return df, w


@pytest.mark.parametrize("model", [False, True])
def test_a_cluster_level_value_contradicting_its_cluster_is_refused(model):
    df, w = _level2_data()
    if model:
        imp = df.mi.impute(model="y ~ w + (1 | g)", m=2, iterations=2, rng=1)
    else:
        f = {"y": "~ w + (1 | g)", "w": "~ cmean(y)"}
        imp = df.mi.impute(f, cluster="g", m=2, iterations=2, rng=1)
    assert imp.spec.variables_by_name["w"].level == 2
    ok = pd.DataFrame({"g": [3, 3, 5, 40, 40], "w": [w[3], np.nan, np.nan, 0.5, np.nan]})
    out = imp.impute_new(ok.assign(y=np.nan), rng=1)  # the training value, or missing
    for k in (1, 2):
        frame = out.complete(k)
        assert (frame.loc[:1, "w"] == w[3]).all() and (frame.loc[3:, "w"] == 0.5).all()
    # another value than the training data's: used by its own row only (the cluster's
    # other new rows took the training value), so refused
    bad = ok.assign(y=np.nan, w=[10.0, np.nan, np.nan, 0.5, np.nan])
    with pytest.raises(DataError, match=r"'w' is a cluster-level.*10\.0 for cluster 3"):
        imp.impute_new(bad)
    # a value for a cluster whose value each chain imputed
    bad = ok.assign(y=np.nan, w=[np.nan, np.nan, 1.0, 0.5, np.nan])
    with pytest.raises(DataError, match="cluster 5, whose value is missing in the training"):
        imp.impute_new(bad)
    # two values in the new rows of one cluster
    bad = ok.assign(y=np.nan, w=[np.nan, np.nan, np.nan, 0.5, 0.7])
    with pytest.raises(DataError, match="different values for cluster 40"):
        imp.impute_new(bad)


def _feedback(seed=5, J=40, n_j=8):
    """Each of y and s feeds on the other: y on s (with a random intercept) and s on the
    cluster mean of y (a gain γβ near 0.7)."""
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n_j)
    s = r.normal(0, 1.5, size=J)
    y = s[g] + r.normal(0, 0.7, J)[g] + r.normal(size=g.size)
    df = pd.DataFrame({"g": g, "y": y, "s": s[g]})
    df.loc[r.random(g.size) < 0.3, "y"] = np.nan
    df.loc[np.isin(g, [0, 1, 2, 3]), "s"] = np.nan
    f = {"y": "~ s + (1 | g)", "s": "~ cmean(y)"}
    return df, mlimpute.impute(df, f, cluster="g", m=4, iterations=20, rng=1)


def test_new_cluster_effects_are_redrawn_every_sweep_as_in_training():
    """A new cluster with y and s all missing: with the parameters fixed, a training
    iteration draws its effect b ~ N(0, ψ) afresh, then y | s, b and s | cmean(y), so s is
    an AR(1) process s_t = a + γc + γβ s_{t-1} + γ(b_t + ē_t) + e_t whose stationary law is
    N(μ, V), μ = (a + γc)/(1 − γβ), V = (γ²(ψ + σ²/n) + σ_s²)/(1 − γ²β²). An effect drawn
    once and held over the sweeps adds γ²ψ/(1 − γβ)² − γ²ψ/(1 − γ²β²) instead: the SD
    about 1.5-2× too large here."""
    df, imp = _feedback()
    n_j, K = 8, 100  # K new clusters in one call: independent given the fixed parameters
    new = pd.DataFrame({"g": np.repeat(np.arange(1000, 1000 + K), n_j), "y": np.nan, "s": np.nan})
    out = imp.impute_new(new, rng=3, sweeps=25)  # 0.85^25 < 0.02: the start is forgotten
    z = []
    for k, frame in enumerate(out):
        sy, ss = imp.chains[k].states["y"], imp.chains[k].states["s"]
        c, beta = sy.beta
        a, gamma = ss.beta
        psi, s2, s2_s = float(sy.psi[0, 0]), float(sy.sigma2), float(ss.sigma2)
        gain = gamma * beta
        assert 0.4 < gain < 0.95
        mu = (a + gamma * c) / (1 - gain)
        var = (gamma**2 * (psi + s2 / n_j) + s2_s) / (1 - gain**2)
        z.append((frame.groupby("g")["s"].first().to_numpy() - mu) / np.sqrt(var))
    z = np.concatenate(z)
    # N = 400 standardised draws, independent: the sample SD has SE 1/sqrt(2N) = 0.035 and
    # the mean 1/sqrt(N) = 0.05; 4 SE bounds (held fixed effects: SD about 1.6)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std(ddof=1) - 1) < 4 / np.sqrt(2 * z.size)


def test_new_cluster_effects_condition_on_its_observed_rows(strong):
    """A new cluster with many observed rows and one missing: its effect is drawn from
    its conditional given those rows, as a training iteration draws it, so the missing
    value centres near the rows' level rather than on N(0, ψ)."""
    df, imp = strong
    beta, _, psi, s2 = _state(imp)
    n = 60
    new = _new_rows(df, n, np.full(n, 900))
    level = beta[0] + 3.0  # a cluster 1.5 ψ-SDs above the mean
    new["grade"] = level + np.random.default_rng(2).normal(0, np.sqrt(s2), n)
    new.loc[0, "grade"] = np.nan
    vals = []
    for seed in range(40):
        vals.append(imp.impute_new(new, rng=seed).complete(1).loc[0, "grade"])
    vals = np.asarray(vals)
    # b | 59 rows: N(≈ mean residual, about σ²/59); the value: that plus σ²
    P = 1 / psi + (n - 1) / s2
    m = (new["grade"].iloc[1:] - beta[0]).sum() / s2 / P
    sd = np.sqrt(1 / P + s2)
    # 40 draws: mean SE sd/sqrt(40), sample SD SE sd/sqrt(80); 4 SE bounds. From N(0, ψ)
    # the mean would be β0 (3 away: 10 SEs) and the SD sqrt(ψ + σ²) (about 2.2 sd)
    assert abs(vals.mean() - (beta[0] + m)) < 4 * sd / np.sqrt(40)
    assert abs(vals.std(ddof=1) - sd) < 4 * sd / np.sqrt(80)
