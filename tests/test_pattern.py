"""Tests of mlimpute.pattern against hand-worked md.pattern output."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlimpute.errors import DataError, DataTypeError  # noqa: E402
from mlimpute.pattern import MissingPattern, missing_pattern  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def mixed() -> pd.DataFrame:
    """Six rows, four columns of different dtypes, every kind of missing marker."""
    t = pd.Timestamp("2024-01-01")
    return pd.DataFrame(
        {
            "a": [1.0, np.nan, 3.0, 4.0, np.nan, 6.0],
            "b": pd.array([1, 2, 3, 4, 5, 6], dtype="Int64"),
            "c": pd.Series(["x", None, "z", pd.NA, "w", "v"], dtype=object),
            "d": [t, pd.NaT, pd.NaT, pd.NaT, t, t],
        }
    )


def expected_table(rows: list[list[int]], index: list, columns: list) -> pd.DataFrame:
    return pd.DataFrame(
        np.array(rows, dtype=np.int64),
        index=pd.Index(index, dtype=object),
        columns=pd.Index(columns, dtype=object),
    )


def test_hand_worked_example(mixed):
    # Missing per column: a 2, b 0, c 2, d 3 -> column order b, a, c, d (a before c: tie,
    # original order). Missingness strings over (b, a, c, d), 1 = missing:
    #   row 0 "0000", row 1 "0111", row 2 "0001", row 3 "0011", row 4 "0100", row 5 "0000".
    # Sorted as strings: 0000 (x2), 0001, 0011, 0100, 0111 -- note "0011" (two missing)
    # precedes "0100" (one missing), as in mice's order(pat).
    expected = expected_table(
        [
            [1, 1, 1, 1, 0],
            [1, 1, 1, 0, 1],
            [1, 1, 0, 0, 2],
            [1, 0, 1, 1, 1],
            [1, 0, 0, 0, 3],
            [0, 2, 2, 3, 7],
        ],
        index=[2, 1, 1, 1, 1, ""],
        columns=["b", "a", "c", "d", ""],
    )
    pd.testing.assert_frame_equal(missing_pattern(mixed).table, expected)


def test_reproduces_the_layout_of_mice_nhanes_output():
    # A synthetic data set with the pattern counts of mice's nhanes data (25 rows;
    # hyp 8, bmi 9, chl 10 missing). md.pattern(nhanes) prints (mice >= 3):
    #    age hyp bmi chl
    # 13   1   1   1   1  0
    # 3    1   1   1   0  1
    # 1    1   1   0   1  1
    # 1    1   0   0   1  2
    # 7    1   0   0   0  3
    #      0   8   9  10 27
    observed_patterns = (
        [(1, 1, 1, 1)] * 13  # age, bmi, hyp, chl (the data's column order)
        + [(1, 1, 1, 0)] * 3
        + [(1, 0, 1, 1)] * 1
        + [(1, 0, 0, 1)] * 1
        + [(1, 0, 0, 0)] * 7
    )
    obs = np.array(observed_patterns, dtype=bool)
    obs = obs[np.random.default_rng(3).permutation(len(obs))]
    values = np.where(obs, 1.0, np.nan) * np.arange(1, 26)[:, None]
    df = pd.DataFrame(values, columns=["age", "bmi", "hyp", "chl"])
    expected = expected_table(
        [
            [1, 1, 1, 1, 0],
            [1, 1, 1, 0, 1],
            [1, 1, 0, 1, 1],
            [1, 0, 0, 1, 2],
            [1, 0, 0, 0, 3],
            [0, 8, 9, 10, 27],
        ],
        index=[13, 3, 1, 1, 7, ""],
        columns=["age", "hyp", "bmi", "chl", ""],
    )
    pd.testing.assert_frame_equal(missing_pattern(df).table, expected)


def test_input_is_unchanged(mixed):
    before = mixed.copy(deep=True)
    pat = missing_pattern(mixed)
    pat.plot()
    _ = pat.table, pat.patterns, pat.counts, pat.n_missing, repr(pat), pat._repr_html_()
    pd.testing.assert_frame_equal(mixed, before)
    assert list(mixed.columns) == ["a", "b", "c", "d"]


def test_properties(mixed):
    pat = missing_pattern(mixed)
    assert isinstance(pat, MissingPattern)
    assert pat.counts.tolist() == [2, 1, 1, 1, 1]
    pd.testing.assert_series_equal(
        pat.n_missing, pd.Series([0, 2, 2, 3], index=["b", "a", "c", "d"], name="n_missing")
    )
    patterns = pat.patterns
    assert patterns.index.name == "count"
    assert patterns.shape == (5, 4)
    assert patterns.to_numpy().tolist() == [
        [1, 1, 1, 1],
        [1, 1, 1, 0],
        [1, 1, 0, 0],
        [1, 0, 1, 1],
        [1, 0, 0, 0],
    ]
    assert (pat.table.dtypes == np.int64).all()


def test_returned_objects_are_copies(mixed):
    pat = missing_pattern(mixed)
    table, patterns, counts, n_missing = pat.table, pat.patterns, pat.counts, pat.n_missing
    table.iloc[0, 0] = 99
    patterns.iloc[0, 0] = 99
    counts.iloc[0] = 99
    n_missing.iloc[0] = 99
    assert pat.table.iloc[0, 0] == 1
    assert pat.patterns.iloc[0, 0] == 1
    assert pat.counts.iloc[0] == 2
    assert pat.n_missing.iloc[0] == 0


def test_complete_data_has_one_pattern():
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    expected = expected_table([[1, 1, 0], [0, 0, 0]], index=[3, ""], columns=["x", "y", ""])
    pd.testing.assert_frame_equal(missing_pattern(df).table, expected)


def test_entirely_missing_column_and_single_column():
    df = pd.DataFrame({"x": [np.nan, np.nan], "y": [1.0, np.nan]})
    expected = expected_table(
        [[1, 0, 1], [0, 0, 2], [1, 2, 3]], index=[1, 1, ""], columns=["y", "x", ""]
    )
    pd.testing.assert_frame_equal(missing_pattern(df).table, expected)
    single = missing_pattern(pd.DataFrame({"z": [1.0, None, 3.0]}))
    assert single.table.to_numpy().tolist() == [[1, 0], [0, 1], [1, 1]]


def test_non_string_column_labels():
    df = pd.DataFrame({0: [1.0, np.nan], 1: [np.nan, np.nan], "w": [1, 2]})
    table = missing_pattern(df).table
    assert list(table.columns) == ["w", 0, 1, ""]


def test_random_frames_are_consistent():
    rng = np.random.default_rng(4)
    n, p = 500, 7
    mask = rng.random((n, p)) < rng.uniform(0.0, 0.5, size=p)
    df = pd.DataFrame(np.where(mask, np.nan, rng.normal(size=(n, p))), columns=list("abcdefg"))
    pat = missing_pattern(df)
    table = pat.table
    body = table.iloc[:-1, :-1].to_numpy()
    counts = pat.counts.to_numpy()
    # counts add up, margins are right, patterns are distinct
    assert counts.sum() == n
    np.testing.assert_array_equal(
        table.iloc[-1, :-1].to_numpy(), df.isna().sum()[table.columns[:-1]].to_numpy()
    )
    assert table.iloc[-1, -1] == mask.sum()
    np.testing.assert_array_equal(table.iloc[:-1, -1].to_numpy(), (1 - body).sum(axis=1))
    assert len({tuple(r) for r in body}) == len(body)
    # columns by ascending missing count; rows by mice's string order
    assert np.all(np.diff(table.iloc[-1, :-1].to_numpy()) >= 0)
    strings = ["".join(str(1 - v) for v in r) for r in body]
    assert strings == sorted(strings)
    # each pattern's count is the number of rows with that pattern
    row_strings = df[table.columns[:-1]].isna().astype(int).astype(str).agg("".join, axis=1)
    assert row_strings.value_counts().loc[strings].tolist() == counts.tolist()


def test_repr_and_html(mixed):
    pat = missing_pattern(mixed)
    text = repr(pat)
    assert text.startswith("MissingPattern: 5 pattern(s) in 6 rows of 4 variables")
    assert "7 missing cells" in text
    assert text.splitlines()[-1].split() == ["0", "2", "2", "3", "7"]
    html = pat._repr_html_()
    assert "<table" in html and "MissingPattern" in html


def test_bad_input():
    with pytest.raises(DataTypeError):
        missing_pattern(pd.Series([1.0, None]))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="row"):
        missing_pattern(pd.DataFrame({"x": []}))
    with pytest.raises(DataError, match="column"):
        missing_pattern(pd.DataFrame(index=range(3)))
    with pytest.raises(DataError, match='labelled ""'):
        missing_pattern(pd.DataFrame({"": [1.0], "x": [None]}))


def _png_pixels(fig: Figure) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    buf.seek(0)
    return mpimg.imread(buf, format="png")


def test_plot_draws_blue_and_red_cells(mixed):
    fig = missing_pattern(mixed).plot()
    assert isinstance(fig, Figure)
    pixels = _png_pixels(fig)[..., :3]
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 1
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.any((b > r + 0.2) & (b > g))  # observed cells
    assert np.any((r > b + 0.1) & (r > g + 0.2))  # missing cells
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"a", "b", "c", "d"} <= texts  # names on top
    assert {"2", "3", "7"} <= texts  # counts, per-pattern and total missing


def test_plot_into_given_axes_and_rotated_names(mixed):
    fig, ax = plt.subplots()
    out = missing_pattern(mixed).plot(ax=ax, rotate_names=True)
    assert out is fig
    assert any(t.get_rotation() == 90 for t in ax.texts)
    assert len(np.unique(_png_pixels(out).reshape(-1, 4), axis=0)) > 1
