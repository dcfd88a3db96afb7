"""Specification files and the command line with several grouping factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.cli import main
from mlimpute.errors import SpecificationError
from mlimpute.specfile import init_spec, loads_spec, read_spec, run
from tests.test_three_level import three_level


@pytest.mark.parametrize("repeat", [True, False])
def test_nested_levels_round_trip_bit_for_bit(repeat):
    """cluster = ["school", "class"] in [imputation]; also when class ids repeat across
    schools (the class level is school:class, the file keeps the columns)."""
    df = three_level(repeat=repeat)
    imp = df.mi.impute(cluster=["school", "class"], m=2, iterations=3, rng=5)
    text = imp.spec.to_toml()
    assert 'cluster = [\n    "school",\n    "class",\n]' in text
    study = loads_spec(text)
    assert study.cluster == ("school", "class")
    again = study.impute(df)
    assert again.spec == imp.spec
    for k in (1, 2):
        pd.testing.assert_frame_equal(imp.complete(k), again.complete(k))
    assert loads_spec(study.to_toml()) == study


def test_crossed_formulas_round_trip_bit_for_bit():
    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame(
        {"school": rng.integers(0, 15, n), "nb": rng.integers(0, 10, n), "x": rng.normal(size=n)}
    )
    df["y"] = df["x"] + rng.normal(size=n)
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    imp = df.mi.impute({"y": "~ x + (1 | school) + (1 | nb)"}, m=2, iterations=2, rng=1)
    again = loads_spec(imp.spec.to_toml()).impute(df)
    for k in (1, 2):
        pd.testing.assert_frame_equal(imp.complete(k), again.complete(k))


def test_bad_cluster_lists_are_refused_naming_the_key():
    base = '[imputation]\nm = 2\n[imputation.formulas]\ny = "~ x + (1 | g)"\n'
    for value, match in (
        ('["a", "b", "c"]', "fourth level"),
        ("[]", "must name the levels"),
        ('["a", 1]', "list of strings"),
    ):
        with pytest.raises(SpecificationError, match=rf"imputation.cluster.*{match}"):
            loads_spec(base.replace("m = 2", f"cluster = {value}\nm = 2"))
    assert loads_spec(base.replace("m = 2", 'cluster = ["g"]\nm = 2')).cluster == "g"


def test_init_writes_the_three_level_defaults():
    df = three_level(repeat=False)
    text = init_spec(df, cluster=["school", "class"], data="d.csv", m=2, iterations=2, seed=3)
    study = loads_spec(text)
    assert study.cluster == ("school", "class")
    assert study.formulas["z"] == (
        "~ cmean(x) + cmean(x, school) + w + cmean(y) + cmean(y, school) + (1 | school)"
    )
    assert "nested levels" in text and "cmean(x, outer)" in text
    imp = study.impute(df)
    assert imp.spec.hierarchy == ("school", "class")


def test_cli_init_describe_and_run_with_nested_levels(tmp_path, capsys):
    three_level(repeat=False).to_csv(tmp_path / "d.csv", index=False)
    spec = tmp_path / "spec.toml"
    args = ["init", str(tmp_path / "d.csv"), "--cluster", "school,class", "-m", "2"]
    assert main([*args, "--iterations", "2", "--seed", "4", "-o", str(spec)]) == 0
    study = read_spec(spec)
    assert study.cluster == ("school", "class")
    out = run(study)
    assert out.imputed.spec.hierarchy == ("school", "class")
    assert not out.imputed.complete(1).isna().any().any()
    capsys.readouterr()
    assert main(["describe", str(tmp_path / "d.csv"), "--cluster", "school,class"]) == 0
    shown = capsys.readouterr().out
    assert "icc(school)" in shown and "icc(class)" in shown
    assert main(["describe", str(tmp_path / "d.csv"), "--cluster", ","]) == 2
    assert "--cluster names no column" in capsys.readouterr().err
