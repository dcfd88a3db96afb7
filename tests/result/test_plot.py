"""Tests of mlimpute.result.plot: figures render, show observed in blue and imputed in red."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import mlimpute  # noqa: E402,F401  (registers .mi)
from mlimpute.datasets import classroom  # noqa: E402
from mlimpute.errors import (  # noqa: E402
    DataError,
    MlimputeWarning,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.result.plot import DISCRETE_MAX_VALUES, ImputedPlots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def pixels(fig: Figure) -> np.ndarray:
    """The rendered figure as an (h, w, 3) float RGB array."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    buf.seek(0)
    return mpimg.imread(buf)[..., :3]


def n_colours(img: np.ndarray) -> int:
    return np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0]


def has_blue(img: np.ndarray) -> bool:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return bool(((b - r > 0.25) & (b > g)).any())


def has_red(img: np.ndarray) -> bool:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return bool(((r - g > 0.25) & (r - b > 0.1)).any())


def test_plot_property_returns_imputed_plots(imp):
    assert isinstance(imp.plot, ImputedPlots)
    assert "trace" in repr(imp.plot)


# ------------------------------------------------------------------------------------------
# trace
# ------------------------------------------------------------------------------------------


def test_trace_has_mean_and_sd_panels_with_one_line_per_chain(imp):
    fig = imp.plot.trace()
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == [
        "relation: mean",
        "relation: sd",
        "grade: mean",
        "grade: sd",
    ]
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == imp.m
        assert len({line.get_color() for line in lines}) == imp.m
        np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, 11))
    expected = imp.dataset["sd"].sel(variable="grade", imputation=2).to_numpy()
    np.testing.assert_allclose(fig.axes[3].get_lines()[1].get_ydata(), expected)
    img = pixels(fig)
    assert n_colours(img) > 10
    assert has_blue(img)  # tab10: chain 1 is blue
    assert len(fig.legends) == 1


def test_trace_with_params_has_one_panel_per_parameter(imp):
    fig = imp.plot.trace(params=True)
    n_params = {v: imp.dataset[f"{v}:params"].shape[-1] for v in imp.variables}
    assert len(fig.axes) == sum(2 + p for p in n_params.values())
    titles = [ax.get_title() for ax in fig.axes]
    assert "grade: var(Intercept|class)" in titles
    assert "relation: var(Residual)" in titles
    k = titles.index("grade: var(Intercept|class)")
    expected = (
        imp.dataset["grade:params"]
        .sel({"grade:param": "var(Intercept|class)", "imputation": 1})
        .to_numpy()
    )
    np.testing.assert_allclose(fig.axes[k].get_lines()[0].get_ydata(), expected)
    assert n_colours(pixels(fig)) > 10


def test_trace_selection_and_layout(imp):
    fig = imp.plot.trace("grade", params=True, ncols=3)
    n = 2 + imp.dataset["grade:params"].shape[-1]
    assert len(fig.axes) == n
    assert all(ax.get_title().startswith("grade: ") for ax in fig.axes)
    assert len(imp.plot.trace(["grade", "relation"]).axes) == 4
    assert imp.plot.trace(["grade", "relation"]).axes[0].get_title() == "grade: mean"


def test_trace_with_many_chains_uses_a_colour_map_and_no_legend():
    df = classroom(1, rng=2).incomplete
    many = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=11, iterations=4, rng=1)
    fig = many.plot.trace()
    assert len(fig.axes[0].get_lines()) == 11
    assert len({tuple(line.get_color()) for line in fig.axes[0].get_lines()}) == 11
    assert not fig.legends
    assert n_colours(pixels(fig)) > 10


# ------------------------------------------------------------------------------------------
# density
# ------------------------------------------------------------------------------------------


def test_density_draws_observed_blue_thick_and_each_imputation_red_thin(imp):
    fig = imp.plot.density()
    assert [ax.get_title() for ax in fig.axes] == ["relation", "grade"]
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == imp.m + 1
        widths = [line.get_linewidth() for line in lines]
        assert widths[-1] > max(widths[:-1])  # observed drawn last, thickest
        colours = [matplotlib.colors.to_hex(line.get_color(), keep_alpha=True) for line in lines]
        assert colours[-1].lower() == "#006cc2b3"
        assert {c.lower() for c in colours[:-1]} == {"#b61a51b3"}
        # A density: non-negative, integrates to about 1 over the padded range.
        x, y = lines[-1].get_xdata(), lines[-1].get_ydata()
        assert (y >= 0).all() and 0.9 < np.trapezoid(y, x) < 1.01
    img = pixels(fig)
    assert n_colours(img) > 10
    assert has_blue(img) and has_red(img)


def test_density_uses_histograms_for_few_integer_values():
    c = classroom(1, rng=3).incomplete
    df = c.assign(grade=np.clip(np.round(c["grade"] / 4), 1, 5))  # 5 integer values
    assert df["grade"].nunique() <= DISCRETE_MAX_VALUES
    res = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=1)
    fig = res.plot.density()
    ax = fig.axes[0]
    assert not ax.get_lines()
    assert len(ax.patches) == 3  # one step histogram per imputation and the observed one
    img = pixels(fig)
    assert has_blue(img) and has_red(img)


def test_density_with_a_single_imputed_value_draws_a_vertical_line():
    df = classroom(1, rng=4).complete.copy()
    df.loc[5, "grade"] = np.nan
    res = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=1)
    ax = res.plot.density().axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3
    xs = lines[0].get_xdata()
    assert xs[0] == xs[1] == res.dataset["grade"].to_numpy()[0, 0]  # axvline


# ------------------------------------------------------------------------------------------
# strip
# ------------------------------------------------------------------------------------------


def test_strip_shows_observed_at_every_imputation_and_imputed_in_red(imp):
    fig = imp.plot.strip()
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, ["relation", "grade"], strict=True):
        observed, imputed = ax.collections
        n_obs = int(imp.data[name].notna().sum())
        n_mis = imp.dataset.sizes[f"{name}:row"]
        off_obs, off_imp = observed.get_offsets(), imputed.get_offsets()
        assert off_obs.shape == ((imp.m + 1) * n_obs, 2)
        assert off_imp.shape == (imp.m * n_mis, 2)
        # Jitter stays within +-0.15 of the imputation number; imputed only at 1..m.
        assert np.abs(off_obs[:, 0] - np.round(off_obs[:, 0])).max() <= 0.15
        assert set(np.round(off_imp[:, 0]).astype(int)) == {1, 2, 3}
        np.testing.assert_allclose(
            np.sort(off_imp[:, 1]), np.sort(imp.dataset[name].to_numpy().ravel())
        )
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    img = pixels(fig)
    assert n_colours(img) > 10
    assert has_blue(img) and has_red(img)


def test_strip_is_reproducible_and_jitter_can_be_off(imp):
    a = imp.plot.strip("grade").axes[0].collections[1].get_offsets()
    b = imp.plot.strip("grade").axes[0].collections[1].get_offsets()
    np.testing.assert_array_equal(a, b)
    flat = imp.plot.strip("grade", jitter=0.0).axes[0].collections[0].get_offsets()
    assert set(flat[:, 0]) == {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(SpecificationError, match="jitter"):
        imp.plot.strip(jitter=-1)


def test_panel_grid_wraps_and_removes_unused_axes(imp):
    fig = imp.plot.strip(ncols=1)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_subplotspec().rowspan.start == 0
    assert fig.axes[1].get_subplotspec().rowspan.start == 1
    assert len(imp.plot.density("grade").axes) == 1


# ------------------------------------------------------------------------------------------
# errors, purity, no global state
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["trace", "density", "strip"])
def test_unknown_variable_is_named(imp, method):
    with pytest.raises(SpecificationError, match="'skill' was not imputed"):
        getattr(imp.plot, method)("skill")
    with pytest.raises(SpecificationError, match="empty"):
        getattr(imp.plot, method)([])
    with pytest.raises(SpecificationError, match="ncols"):
        getattr(imp.plot, method)(ncols=0)


def test_nothing_imputed_raises():
    df = classroom(1, rng=1).complete
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=1)
    for method in ("trace", "density", "strip"):
        with pytest.raises(DataError, match="nothing was imputed"):
            getattr(res.plot, method)()


def test_plots_do_not_modify_the_result_or_show(imp, monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("plt.show() called")

    monkeypatch.setattr(plt, "show", no_show)
    ds_before = imp.dataset.copy(deep=True)
    data_before = imp.data.copy(deep=True)
    imp.plot.trace(params=True)
    imp.plot.density()
    imp.plot.strip()
    xr.testing.assert_identical(imp.dataset, ds_before)
    pd.testing.assert_frame_equal(imp.data, data_before)


def test_importing_the_package_does_not_import_matplotlib():
    code = (
        "import sys, mlimpute, mlimpute.result.plot, mlimpute.pattern; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------
# categorical variables: observed and imputed on the same scale
# ------------------------------------------------------------------------------------------


def test_strip_draws_ordered_numeric_categories_at_their_values(coded):
    ax = coded.plot.strip("likert", jitter=0.0).axes[0]
    observed, imputed = (c.get_offsets()[:, 1] for c in ax.collections)
    assert set(observed) == {1, 2, 3, 4, 5}
    cells = coded.imputed("likert")
    expected = np.concatenate([cells[i].astype(float).to_numpy() for i in (1, 2)])
    np.testing.assert_array_equal(imputed, expected)  # the categories, not codes 0..4
    assert set(imputed) <= {1, 2, 3, 4, 5}


def test_density_draws_ordered_numeric_categories_at_their_values(coded):
    ax = coded.plot.density("likert").axes[0]
    assert len(ax.patches) == 3  # step histograms: one bin per category 1..5
    for patch in ax.patches:
        xs = patch.get_xy()[:, 0]
        assert xs.min() == pytest.approx(0.5) and xs.max() == pytest.approx(5.5)


@pytest.mark.parametrize("method", ["density", "strip"])
def test_text_categories_are_refused_by_name_or_left_out_with_a_warning(coded, method):
    with pytest.raises(UnsupportedError, match="'sex'"):
        getattr(coded.plot, method)("sex")
    with pytest.warns(MlimputeWarning, match=r"left out \['sex'\]"):
        fig = getattr(coded.plot, method)()
    assert "sex" not in [ax.get_title() for ax in fig.axes]
    assert "likert" in [ax.get_title() for ax in fig.axes]


def test_bad_plot_arguments_are_named(imp):
    with pytest.raises(SpecificationError, match="jitter"):
        imp.plot.strip(jitter="a")
    for bad in ("a", 2.7, True):
        with pytest.raises(SpecificationError, match="ncols"):
            imp.plot.trace(ncols=bad)
        with pytest.raises(SpecificationError, match="ncols"):
            imp.plot.density(ncols=bad)
    with pytest.raises(SpecificationError, match="variables"):
        imp.plot.trace(5)
