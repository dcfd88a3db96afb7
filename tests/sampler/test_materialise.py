"""Designs built once (mlimpute/sampler/materialise.py): plain numeric columns read from the
data give formulaic's design; the rank check's cross-products decide only where the QR
would keep every column, and collinear designs still go to the QR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix
from scipy import linalg as sla

from mlimpute.errors import DataError
from mlimpute.sampler import materialise
from mlimpute.sampler.materialise import _independent_columns, _materialise, full_rank_by_gram
from mlimpute.spec.formula import parse_formula
from mlimpute.spec.grammar import EVALUATION_CONTEXT


def _by_qr(X, monkeypatch):
    """The rank check with the cross-products' shortcut switched off (the QR alone)."""
    with monkeypatch.context() as m:
        m.setattr(materialise, "full_rank_by_gram", lambda X: False)
        return _independent_columns(X)


def _min_r(X):
    Xs = X / np.linalg.norm(X, axis=0)
    return np.abs(np.diag(sla.qr(Xs, mode="r")[0])).min()


def _designs():
    """Designs from well conditioned to collinear: an intercept, a 0/1 column, two
    predictors, and a column ``x + e * noise`` nearly in their span for e from 1 down to 0."""
    rng = np.random.default_rng(11)
    n = 2_000
    x = rng.normal(size=n)
    base = np.column_stack([np.ones(n), rng.random(n) < 0.5, x, rng.normal(50, 3, n)])
    out = {}
    for e in [1.0, 1e-1, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-6, 1e-9, 0.0]:
        out[f"near-{e:g}"] = np.column_stack([base, 2 * x + 1 + e * rng.normal(size=n)])
    out["constant"] = np.column_stack([base, np.full(n, 2.0)])
    out["zero"] = np.column_stack([base, np.zeros(n)])
    out["huge"] = base * 1e160  # squares overflow: left to the QR
    out["cluster mean"] = np.column_stack([np.ones(n), np.repeat(rng.normal(50, 0.5, n // 20), 20)])
    return out


@pytest.mark.parametrize("name", list(_designs()))
def test_same_columns_as_the_qr_alone(name, monkeypatch):
    X = np.asfortranarray(_designs()[name])
    with np.errstate(over="ignore"):  # "huge": the QR's column norms overflow, as before
        assert _independent_columns(X) == _by_qr(X, monkeypatch)


def test_collinear_and_constant_columns_go_to_the_qr_and_are_dropped(monkeypatch):
    designs = _designs()
    for name in ["near-0", "near-1e-09", "constant", "zero", "huge"]:
        X = designs[name]
        assert not full_rank_by_gram(X), name
    for name in ["near-0", "near-1e-09", "constant", "zero"]:
        keep, dropped = _independent_columns(designs[name])
        assert dropped == [4] and keep == [0, 1, 2, 3], name


def test_decides_only_where_every_r_kk_is_far_above_the_tolerance():
    """Where the cross-products decide, the QR's smallest |R_kk| is near 1e-3 or above (the
    bound the threshold gives: sqrt(1e-6)); the nearly collinear designs are left to it."""
    decided = []
    for name, X in _designs().items():
        if full_rank_by_gram(X):
            decided.append(name)
            assert _min_r(X) > 0.9e-3, name
    assert {"near-1", "near-0.1", "near-0.01", "cluster mean"} <= set(decided)
    assert "near-0.0001" not in decided and "near-1e-06" not in decided


def _frame(n=600):
    rng = np.random.default_rng(4)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 5, n),
            "b": rng.random(n) < 0.5,
            "z": rng.normal(3, 1, n),
            "c": rng.choice(["u", "v", "w"], n),
        }
    )
    df["cmean(x)"] = df["x"] * 0.5
    return df


@pytest.mark.parametrize(
    "rhs",
    [
        "x + k + b + `cmean(x)`",  # plain numeric columns: read from the frame
        "x + k - 1",
        "x + c",  # a category: formulaic over every row
        "x * z",  # an interaction
        "x + I(z ** 2) + np.log(z)",  # transforms
        "x + center(z)",  # a transform whose state depends on every row
    ],
)
def test_the_design_read_directly_is_formulaics(rhs, monkeypatch):
    monkeypatch.setattr(materialise, "_HEAD_MIN_ROWS", 500)
    df = _frame()
    parsed = parse_formula(f"~ {rhs}", "y")
    dynamic = {"x", "cmean(x)"}
    names, X, fast, slow, spec = _materialise(rhs, df, parsed, dynamic)
    mm = model_matrix(rhs, df, context=EVALUATION_CONTEXT)
    assert names == list(mm.columns)
    np.testing.assert_array_equal(np.column_stack(X), np.asarray(mm, dtype=np.float64))
    direct = np.shares_memory(X[names.index("x")], df["x"].to_numpy())
    assert direct == (rhs.startswith("x + k"))  # read from the frame, not formulaic's copy
    small = _materialise(rhs, df.iloc[:400], parsed, dynamic)  # too few rows: formulaic
    assert (small[0], small[2], small[3]) == (names, fast, slow)
    # the spec materialises other data as formulaic's own (new data, the slow refresh)
    other = _frame(50).assign(x=lambda d: d["x"] + 1)
    np.testing.assert_array_equal(
        np.asarray(spec.get_model_matrix(other, context=EVALUATION_CONTEXT), dtype=float),
        np.asarray(mm.model_spec.get_model_matrix(other, context=EVALUATION_CONTEXT), dtype=float),
    )


def test_a_non_finite_column_read_directly_is_named(monkeypatch):
    monkeypatch.setattr(materialise, "_HEAD_MIN_ROWS", 500)
    df = _frame()
    df.loc[400, "z"] = np.inf
    with pytest.raises(DataError, match="'z'"):
        _materialise("x + z", df, parse_formula("~ x + z", "y"), set())
