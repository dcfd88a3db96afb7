"""Tests of mlimpute.diagnostics: known properties of R-hat and ESS, edge cases, xarray layer.

Monte Carlo tolerances are stated next to each check. They come from 400 simulated
replicates run while writing the tests (iid normal, 4 chains x 1000 draws: bulk ESS has a
standard deviation of about 4.7 % of the number of draws; AR(1) with phi = 0.5: about 8 %).
Where a single replicate would leave too little margin, the check averages over a batch of
independent replicates, which also exercises the batch axes.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.signal import lfilter

from mlimpute.diagnostics import (
    MIN_DRAWS,
    MIN_WARNING_ITERATIONS,
    converged,
    convergence_warning,
    ess_bulk,
    ess_bulk_array,
    ess_tail,
    ess_tail_array,
    rhat,
    rhat_array,
    rhat_table,
    rhat_threshold,
)
from mlimpute.errors import DataError, DataTypeError, MlimputeError


def ar1(rng: np.random.Generator, phi: float, shape: tuple[int, ...]) -> np.ndarray:
    """Stationary AR(1) chains with unit innovations along the last axis (vectorised)."""
    e = rng.normal(size=shape)
    e[..., 0] /= np.sqrt(1.0 - phi**2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], e, axis=-1)


# ------------------------------------------------------------------------------------------
# known properties
# ------------------------------------------------------------------------------------------


def test_iid_chains_have_rhat_near_one():
    rng = np.random.default_rng(20240601)
    x = rng.normal(size=(4, 1000))
    r = rhat_array(x)
    # Over 400 replicates the 99th percentile was 1.002; 1.01 leaves a wide margin.
    assert 0.99 < r < 1.01


def test_iid_chains_have_ess_near_number_of_draws():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4, 1000))  # 20 independent replicates of 4 x 1000
    bulk = ess_bulk_array(x)
    tail = ess_tail_array(x)
    assert bulk.shape == tail.shape == (20,)
    # Per replicate the sd is ~190 (4.7 %) for bulk, ~160 for tail; the mean over 20
    # replicates has sd ~1 %, so a 10 % band is ~10 sd wide.
    assert abs(bulk.mean() / 4000 - 1) < 0.10
    assert abs(tail.mean() / 4000 - 1) < 0.10
    # Every single replicate within 25 % (> 5 sd).
    assert np.all(np.abs(bulk / 4000 - 1) < 0.25)


def test_shifted_chain_means_give_large_rhat():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 1000)) + np.array([0.0, 0.0, 0.0, 2.0])[:, None]
    # One chain of four shifted by two sd: over 200 replicates the median R-hat was 1.32 and
    # the 0.1 % quantile 1.30, against 1.002 for unshifted chains.
    assert rhat_array(x) > 1.2
    y = rng.normal(size=(4, 1000)) + np.array([0.0, 0.5, 1.0, 1.5])[:, None]
    # Staggered means, 0.5 sd apart: median 1.16, 0.1 % quantile 1.14.
    assert rhat_array(y) > 1.1


def test_chains_differing_in_scale_are_caught_by_the_folded_rhat():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 1000)) * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    # Same means, so the bulk R-hat stays near 1; the folded R-hat sees the scale
    # (median 1.14, 0.1 % quantile 1.12 over 200 replicates).
    assert rhat_array(x) > 1.08


def test_trend_within_a_single_chain_is_caught_by_splitting():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 1000)) + np.linspace(0.0, 3.0, 1000)
    assert rhat_array(x) > 1.1


def test_single_chain_iid_has_rhat_near_one():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 4000))
    # m = 1 is split into 2 halves of 2000: the 99th percentile of R-hat was 1.002 and of
    # |ESS / 4000 - 1| 0.175 (200 replicates).
    assert 0.99 < rhat_array(x) < 1.01
    assert abs(ess_bulk_array(x) / 4000 - 1) < 0.25


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ar1_bulk_ess_matches_theory(phi):
    rng = np.random.default_rng(6)
    n_rep, m, n = 20, 4, 2000
    x = ar1(rng, phi, (n_rep, m, n))
    expected = m * n * (1 - phi) / (1 + phi)
    ess = ess_bulk_array(x)
    # Per replicate sd at 4 x 2000 draws: ~6 % (phi 0.5) and ~13 % (phi 0.9) of the
    # expected value, with no visible bias (200 replicates: mean ratio 0.99 and 1.01); the
    # mean over 20 replicates has sd below 3 %, so 15 % is > 5 sd.
    assert abs(ess.mean() / expected - 1) < 0.15


def test_autocorrelated_chains_have_smaller_ess_than_iid():
    rng = np.random.default_rng(7)
    iid = rng.normal(size=(4, 1000))
    sticky = ar1(rng, 0.8, (4, 1000))
    # Theory: ratio (1 - 0.8) / (1 + 0.8) = 0.11; its 99th percentile was 0.14.
    assert ess_bulk_array(sticky) < 0.3 * ess_bulk_array(iid)


def test_rhat_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(8)
    x = ar1(rng, 0.3, (4, 200)) + np.array([0.0, 0.1, 0.2, 0.3])[:, None]
    # Rank normalisation: the bulk R-hat depends only on the ranks; exp and scaling keep them.
    # (The folded part uses the median, which a monotone transform also maps onto itself.)
    assert rhat_array(np.exp(x)) == pytest.approx(rhat_array(x), rel=1e-12)
    assert ess_bulk_array(3 * x + 7) == pytest.approx(ess_bulk_array(x), rel=1e-12)


def test_heavy_tails_do_not_break_rhat():
    rng = np.random.default_rng(9)
    x = rng.standard_cauchy(size=(4, 1000))
    # Cauchy draws have no mean or variance; ranks make R-hat well defined and ~1.
    assert rhat_array(x) < 1.01


# ------------------------------------------------------------------------------------------
# axis convention and broadcasting
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [rhat_array, ess_bulk_array, ess_tail_array])
def test_batch_axes_match_elementwise_results(kernel):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 4, 50, 2))  # (batch, chain, draw, batch)
    out = kernel(x, chain_axis=1, draw_axis=2)
    assert out.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert out[i, j] == pytest.approx(kernel(x[i, :, :, j]), rel=1e-10)


def test_swapped_axes_give_the_same_result():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5, 40))
    assert rhat_array(x.T, chain_axis=1, draw_axis=0) == pytest.approx(rhat_array(x))


def test_two_dimensional_input_gives_a_scalar():
    rng = np.random.default_rng(12)
    out = rhat_array(rng.normal(size=(2, 10)))
    assert np.ndim(out) == 0
    assert np.isfinite(float(out))


def test_integer_and_boolean_draws_are_accepted():
    rng = np.random.default_rng(13)
    assert np.isfinite(rhat_array(rng.integers(0, 10, size=(4, 100))))
    assert np.isfinite(ess_bulk_array(rng.random((4, 100)) < 0.5))


def test_odd_number_of_draws_drops_the_middle_draw():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(3, 21))
    x_even = np.delete(x, 10, axis=-1)
    assert rhat_array(x) == pytest.approx(rhat_array(x_even), rel=1e-12)


# ------------------------------------------------------------------------------------------
# edge cases: the NaN policy
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [rhat_array, ess_bulk_array, ess_tail_array])
def test_constant_trace_gives_nan_without_warnings(kernel):
    with np.errstate(all="raise"):
        assert np.isnan(kernel(np.full((4, 20), 2.5)))


def test_chains_stuck_at_different_values_give_infinite_rhat():
    x = np.repeat(np.arange(4.0)[:, None], 20, axis=1)
    assert np.isposinf(rhat_array(x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kernel", [rhat_array, ess_bulk_array, ess_tail_array])
def test_non_finite_draws_give_nan_only_where_they_are(kernel, bad):
    rng = np.random.default_rng(15)
    x = rng.normal(size=(2, 4, 50))
    x[1, 2, 7] = bad
    out = kernel(x)
    assert np.isfinite(out[0])
    assert np.isnan(out[1])


@pytest.mark.parametrize("n_draws", [0, 1, 3])
@pytest.mark.parametrize("kernel", [rhat_array, ess_bulk_array, ess_tail_array])
def test_too_few_draws_raise(kernel, n_draws):
    with pytest.raises(DataError, match=f"at least {MIN_DRAWS} draws"):
        kernel(np.zeros((4, n_draws)))


def test_exactly_four_draws_work():
    rng = np.random.default_rng(16)
    assert np.isfinite(rhat_array(rng.normal(size=(3, MIN_DRAWS))))


def test_bad_shapes_and_dtypes_raise():
    with pytest.raises(DataError, match="chain axis and a draw axis"):
        rhat_array(np.zeros(10))
    with pytest.raises(DataError, match="two different axes"):
        rhat_array(np.zeros((4, 10)), chain_axis=1, draw_axis=-1)
    with pytest.raises(DataError, match="two different axes"):
        rhat_array(np.zeros((4, 10)), chain_axis=2)
    with pytest.raises(DataTypeError):
        rhat_array(np.array([["a"] * 10] * 4))
    with pytest.raises(MlimputeError):
        ess_bulk_array(np.zeros((0, 10)))


def test_binary_trace_with_balanced_values_still_gets_an_rhat():
    # |x - median| is constant for a balanced 0/1 trace, so the folded R-hat is 0/0;
    # the bulk R-hat must still be reported.
    x = np.tile(np.array([0.0, 1.0]), (4, 50))
    assert np.isfinite(rhat_array(x))


# ------------------------------------------------------------------------------------------
# xarray layer
# ------------------------------------------------------------------------------------------


@pytest.fixture
def traces() -> xr.Dataset:
    rng = np.random.default_rng(17)
    m, n = 5, 100
    return xr.Dataset(
        {
            "mean": (("imputation", "iteration", "variable"), rng.normal(size=(m, n, 2))),
            "beta": (("term", "iteration", "imputation"), rng.normal(size=(3, n, m))),
            "stuck": (("imputation", "iteration"), np.repeat(np.arange(m)[:, None], n, 1)),
            "fixed": (("imputation", "iteration"), np.ones((m, n))),
            "observed": (("row",), np.arange(7.0)),
        },
        coords={
            "variable": ["grade", "skill"],
            "term": ["Intercept", "gender", "skill"],
            "iteration": np.arange(n),
            "seed": ("imputation", np.arange(m)),
        },
        attrs={"source": "test"},
    )


@pytest.mark.parametrize("func", [rhat, ess_bulk, ess_tail, converged])
def test_wrappers_keep_only_variables_with_both_dims(traces, func):
    out = func(traces)
    assert isinstance(out, xr.Dataset)
    assert set(out.data_vars) == {"mean", "beta", "stuck", "fixed"}
    assert "imputation" not in out.dims and "iteration" not in out.dims
    assert "seed" not in out.coords
    assert list(out["mean"]["variable"].values) == ["grade", "skill"]
    assert out["beta"].dims == ("term",)
    assert out.attrs == {"source": "test"}


def test_wrapper_matches_kernel(traces):
    r = rhat(traces)
    expected = rhat_array(traces["beta"].values, chain_axis=2, draw_axis=1)
    np.testing.assert_allclose(r["beta"].values, expected, rtol=1e-12)
    e = ess_bulk(traces)
    expected = ess_bulk_array(traces["mean"].values, chain_axis=0, draw_axis=1)
    np.testing.assert_allclose(e["mean"].values, expected, rtol=1e-12)


def test_wrapper_on_dataarray_returns_dataarray(traces):
    out = ess_tail(traces["beta"])
    assert isinstance(out, xr.DataArray)
    assert out.name == "beta"
    assert out.dims == ("term",)


def test_custom_dim_names():
    rng = np.random.default_rng(18)
    da = xr.DataArray(rng.normal(size=(4, 200)), dims=("chain", "draw"))
    assert float(rhat(da, chain_dim="chain", draw_dim="draw")) < 1.05


def test_wrapper_errors(traces):
    with pytest.raises(DataError, match="lacks"):
        rhat(traces["observed"])
    with pytest.raises(DataError, match="no data variable"):
        rhat(traces[["observed"]])
    with pytest.raises(DataError, match="must differ"):
        rhat(traces, chain_dim="iteration", draw_dim="iteration")
    with pytest.raises(DataTypeError):
        rhat(np.zeros((4, 10)))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="at least 4 draws"):
        rhat(traces.isel(iteration=slice(0, 3)))


def test_converged_verdicts(traces):
    ok = converged(traces)
    assert bool(ok["mean"].all())
    assert bool(ok["beta"].all())
    assert not bool(ok["stuck"])  # constant within chains, different between: a failure
    assert bool(ok["fixed"])  # constant everywhere: a genuinely fixed value
    assert ok["mean"].dtype == bool


def test_converged_flags_shifted_chains_and_non_finite_traces():
    rng = np.random.default_rng(19)
    x = rng.normal(size=(5, 20, 3))
    x[4, :, 0] += 3.0
    x[2, 5, 1] = np.nan
    da = xr.DataArray(x, dims=("imputation", "iteration", "k"))
    assert converged(da).values.tolist() == [False, False, True]
    # threshold is exclusive and can be tightened
    r = float(rhat(da.isel(k=2)))
    assert not bool(converged(da.isel(k=2), threshold=r))


def _ar1_chains(seed: int, m: int = 5, n: int = 20) -> xr.DataArray:
    """m converged chains of n draws of an AR(1) with coefficient 0.5 (after n warm-up)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(m, 2 * n))
    x = np.zeros_like(e)
    for t in range(1, 2 * n):
        x[:, t] = 0.5 * x[:, t - 1] + e[:, t]
    return xr.DataArray(x[:, n:], dims=("imputation", "iteration"))


def test_converged_defaults_to_the_calibrated_limit_of_each_trace():
    # converged, autocorrelated short chains as an imputation run keeps them: R-hat above
    # 1.1 (a fixed 1.1 fails them) but below the limit for their length and
    # autocorrelation, the limit the run's check applies (trace_limits, flag_traces)
    from mlimpute.diagnostics.convergence import trace_limits

    da = _ar1_chains(7)
    r = float(rhat(da))
    assert 1.1 < r < float(trace_limits(da.values[None])["limit"].iloc[0])
    assert bool(converged(da))
    assert not bool(converged(da, threshold=1.1))
    # chains apart fail the default too
    shifted = da + xr.DataArray(np.arange(5.0), dims="imputation")
    assert not bool(converged(shifted))


def test_converged_default_matches_the_run_check(imp):
    # the kept traces of a run, as one Dataset: the same traces, limits and verdicts as
    # rhat_table and MultiplyImputed.converged()
    n = imp.traces.sizes["iteration"]
    kept = imp.traces.isel(iteration=slice(n // 2, None))
    table = rhat_table(imp)
    ok = converged(kept)
    verdicts = np.concatenate([ok[v].values.ravel() for v in ok.data_vars])
    assert verdicts.size == len(table)
    assert bool(verdicts.all()) == imp.converged()
    limits = table["limit"].to_numpy()
    rh = table["rhat"].to_numpy()
    assert ((rh <= limits) | np.isnan(rh)).sum() == verdicts.sum()


def test_inputs_are_not_modified(traces):
    before = traces.copy(deep=True)
    rhat(traces)
    ess_bulk(traces)
    ess_tail(traces)
    converged(traces)
    xr.testing.assert_identical(traces, before)
    x = np.random.default_rng(20).normal(size=(4, 30))
    x_before = x.copy()
    rhat_array(x)
    ess_bulk_array(x)
    ess_tail_array(x)
    np.testing.assert_array_equal(x, x_before)


# ------------------------------------------------------------------------------------------
# optional cross-check against arviz-stats (never required)
# ------------------------------------------------------------------------------------------


def test_rhat_agrees_with_arviz_stats_when_installed():
    array_stats = pytest.importorskip("arviz_stats.base").array_stats
    rng = np.random.default_rng(21)
    x = ar1(rng, 0.7, (4, 300)) + rng.normal(size=(4, 1)) * 0.3
    assert rhat_array(x) == pytest.approx(float(array_stats.rhat(x)), rel=1e-10)
    # ESS is computed as the reference implementation (Stan, arviz) computes it
    az_bulk = float(array_stats.ess(x, method="bulk"))
    assert ess_bulk_array(x) == pytest.approx(az_bulk, rel=1e-10)


# ------------------------------------------------------------------------------------------
# result layer: threshold, table and warning on a MultiplyImputed
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n", "k"), [(5, 10, 1), (3, 6, 1), (20, 10, 1), (5, 10, 18)])
def test_rhat_threshold_is_calibrated_for_iid_chains(m, n, k):
    # 6000 replicates of k traces: the rate of "some trace above" has sd ~0.003 at 0.05;
    # the Bonferroni split is conservative for k > 1, so only an upper bound there.
    rng = np.random.default_rng(100 + m + n + k)
    r = rhat_array(rng.normal(size=(6000, k, m, n)))
    rate = np.mean((r > rhat_threshold(m, n, n_traces=k)).any(axis=-1))
    assert rate < 0.065
    if k == 1:
        assert rate > 0.035


def test_rhat_threshold_shrinks_with_longer_chains_and_grows_with_more_traces():
    assert rhat_threshold(5, 10) > rhat_threshold(5, 20) > rhat_threshold(5, 200) > 1.0
    assert rhat_threshold(5, 10, n_traces=20) > rhat_threshold(5, 10)
    assert rhat_threshold(5, 10, alpha=0.01) > rhat_threshold(5, 10)
    assert rhat_threshold(5, 11) == rhat_threshold(5, 10)  # odd: middle draw dropped
    for bad in (
        {"m": 0, "n_draws": 10},
        {"m": 5, "n_draws": 3},
        {"m": 2.5, "n_draws": 10},
        {"m": 5, "n_draws": 10, "n_traces": 0},
        {"m": 5, "n_draws": 10, "alpha": 1},
    ):
        with pytest.raises(DataError):
            rhat_threshold(**bad)


@pytest.fixture(scope="module")
def imp():
    import mlimpute  # noqa: F401  (registers .mi)
    from mlimpute.datasets import classroom

    c = classroom(2, rng=1)
    return c.incomplete.mi.impute(c.imputation, m=3, iterations=10, rng=1)


def with_traces(imp, rng: np.random.Generator, iterations: int | None = None, edit=None):
    """A copy of ``imp`` whose traces are replaced by iid normal draws (then edited)."""
    from mlimpute.result.imputed import MultiplyImputed

    ds = imp.dataset
    if iterations is not None:
        ds = ds.isel(iteration=np.arange(iterations) % ds.sizes["iteration"])
        ds = ds.assign_coords(iteration=np.arange(1, iterations + 1))
    ds = ds.copy(deep=True)
    for name in imp.traces.data_vars:
        ds[name].values = rng.normal(size=ds[name].shape)
    if edit is not None:
        edit(ds)
    return MultiplyImputed(ds, imp.data, imp.spec, imp.events)


def test_rhat_table_lists_every_trace_in_visit_order(imp):
    table = rhat_table(imp)
    assert list(table.columns) == ["variable", "trace", "rhat", "limit", "finite"]
    n_params = {v: imp.dataset[f"{v}:params"].shape[-1] for v in imp.variables}
    assert len(table) == sum(2 + p for p in n_params.values())
    first = table[table["variable"] == imp.variables[0]]["trace"].tolist()
    assert first[:2] == ["mean", "sd"]
    assert (
        first[2:]
        == imp.dataset[f"{imp.variables[0]}:params"][f"{imp.variables[0]}:param"]
        .to_numpy()
        .tolist()
    )
    assert table["finite"].all()
    # Default burn is the first half, the same draws as imp.rhat() by default.
    expected = imp.rhat()["mean"].sel(variable="grade").item()
    assert expected == pytest.approx(imp.rhat(burn=5)["mean"].sel(variable="grade").item())
    got = table.query("variable == 'grade' and trace == 'mean'")["rhat"].item()
    assert got == pytest.approx(expected)
    assert rhat_table(imp, burn=0)["rhat"].ne(table["rhat"]).any()
    with pytest.raises(DataError, match="burn=8"):
        rhat_table(imp, burn=8)


def test_no_warning_for_healthy_chains(imp):
    rng = np.random.default_rng(7)
    fake = with_traces(imp, rng, iterations=40)
    assert convergence_warning(fake) is None


def test_warning_names_the_variable_and_parameter_that_did_not_mix(imp):
    def shift(ds):
        ds["grade:params"].loc[{"imputation": 2, "grade:param": "var(Residual)"}] += 5.0
        ds["mean"].loc[{"imputation": 1, "variable": "relation"}] -= 5.0

    fake = with_traces(imp, np.random.default_rng(8), iterations=40, edit=shift)
    msg = convergence_warning(fake)
    assert msg is not None
    assert "grade (var(Residual)" in msg and "relation (mean" in msg
    assert "Intercept" not in msg
    assert "21-40" in msg and "iterations=80" in msg
    only_values = convergence_warning(fake, params=False)
    assert "relation (mean" in only_values and "grade" not in only_values
    assert "(4 traces;" in only_values and "iterations 21-40 of 40, 3 chains" in only_values


def test_warning_reports_non_finite_traces_and_ignores_constant_ones(imp):
    def edit(ds):
        ds["sd"].loc[{"imputation": 1, "iteration": 30, "variable": "grade"}] = np.nan
        ds["relation:params"].loc[{"relation:param": "gender"}] = 0.5  # constant

    fake = with_traces(imp, np.random.default_rng(9), iterations=40, edit=edit)
    msg = convergence_warning(fake)
    assert msg is not None and "grade (sd non-finite draws)" in msg
    assert "relation (" not in msg


def test_explicit_threshold_and_too_few_iterations(imp):
    fake = with_traces(imp, np.random.default_rng(10), iterations=40)
    assert convergence_warning(fake, threshold=1.0) is not None  # some R-hat is above 1
    assert convergence_warning(fake, threshold=10.0) is None

    def stuck(ds):  # chains 10 apart: R-hat is huge, but 7 iterations are too few to judge
        ds["mean"].values[:, :, 0] += np.arange(3.0)[:, None] * 10

    short = with_traces(imp, np.random.default_rng(11), MIN_WARNING_ITERATIONS - 1, stuck)
    assert convergence_warning(short) is None
    # With 3 chains of 4 kept draws even separated chains stay below the critical value
    # (rank-normalised R-hat saturates, and the limit allows for the autocorrelation
    # estimated from 6 split chains); 20 kept draws are enough.
    assert convergence_warning(with_traces(imp, np.random.default_rng(11), 8, stuck)) is None
    enough = with_traces(imp, np.random.default_rng(11), 40, stuck)
    assert "relation (mean" in convergence_warning(enough)


def test_warning_on_a_real_run_uses_the_calibrated_threshold(imp):
    msg = convergence_warning(imp)
    table = rhat_table(imp)
    assert (table["limit"] >= 1.01).all()
    flagged = (table["rhat"].fillna(0.0) > table["limit"]) | ~table["finite"]
    assert (msg is None) == (not flagged.any())
    if msg is not None:
        assert msg.startswith("R-hat above its limit for:")


def test_result_diagnostics_refuse_bad_arguments(imp):
    # kind, burn and threshold are checked, naming the argument, before any work
    from mlimpute.errors import SpecificationError

    with pytest.raises(SpecificationError, match="kind must be 'bulk' or 'tail', got 'nonsense'"):
        imp.ess(kind="nonsense")
    for burn in (2.5, True, "2"):
        with pytest.raises(DataTypeError, match="burn must be a whole number"):
            imp.rhat(burn=burn)
        with pytest.raises(DataTypeError, match="burn must be a whole number"):
            rhat_table(imp, burn=burn)
    with pytest.raises(DataError, match="burn=-1 is negative"):
        imp.rhat(burn=-1)
    with pytest.raises(DataError, match="burn=-1 is negative"):
        rhat_table(imp, burn=-1)
    with pytest.raises(DataError, match="burn=7 leaves 3 of 10 iterations"):
        imp.ess(burn=7)
    for threshold in (-1, 0, 0.99, float("nan")):
        with pytest.raises(DataError, match="threshold must be at least 1"):
            imp.converged(threshold=threshold)
        with pytest.raises(DataError, match="threshold must be at least 1"):
            converged(imp.traces, threshold=threshold)
        with pytest.raises(DataError, match="threshold must be at least 1"):
            convergence_warning(imp, threshold=threshold)
    with pytest.raises(DataTypeError, match="threshold must be a number"):
        imp.converged(threshold="1.1")
    # what is accepted
    assert imp.ess(kind="tail", burn=np.int64(0)).sizes == imp.ess(burn=0).sizes
    assert isinstance(imp.converged(threshold=1.5, burn=2), bool)
