"""Study specification files: write what was run, read it back, reproduce it bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import FormulaError, SpecificationError
from mlimpute.specfile import (
    AnalysisSpec,
    OutputSpec,
    StudySpec,
    default_formulas,
    formula_text,
    init_spec,
    loads_spec,
    read_spec,
    run,
    spec_to_toml,
)


@pytest.fixture(scope="module")
def data():
    return mlimpute.datasets.classroom(2, n_classes=10, class_size=8, rng=4).incomplete


def assert_same_imputations(a, b):
    assert a.variables == b.variables
    for v in a.variables:
        np.testing.assert_array_equal(a.dataset[v].values, b.dataset[v].values)
        np.testing.assert_array_equal(
            a.dataset[f"{v}:params"].values, b.dataset[f"{v}:params"].values
        )


@pytest.mark.parametrize("rng", [11, None], ids=["seed", "fresh-entropy"])
def test_written_spec_reproduces_the_run(data, tmp_path, rng):
    formulas = {
        "relation": "~ gender + grade + cmean(grade) + (1 | class)",
        "grade": "~ gender + relation + skill + (1 + gender | class)",
    }
    imp = data.mi.impute(
        formulas,
        m=2,
        iterations=4,
        rng=rng,
        visit=["grade", "relation"],
        method={"relation": "norm"},
    )  # single-level: random part dropped
    path = tmp_path / "spec.toml"
    path.write_text(spec_to_toml(imp.spec, data="data.csv"))
    study = read_spec(path)
    assert study.seed == imp.spec.seed and study.visit == ("grade", "relation")
    assert study.methods == {"grade": "2l.norm", "relation": "norm"}
    assert study.formulas["relation"] == "~ gender + grade + cmean(grade)"
    again = study.impute(data)
    assert_same_imputations(imp, again)
    assert again.spec.formulas == imp.spec.formulas
    if rng is None:  # 128-bit entropy is written as a string (TOML integers are 64-bit)
        assert f'seed = "{imp.spec.seed}"' in path.read_text()


def test_odd_column_names_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(8), 6)
    df = pd.DataFrame({"my class": g, "x y": rng.normal(size=48), "ok": rng.normal(size=48)})
    df.loc[rng.random(48) < 0.3, "x y"] = np.nan
    df.loc[rng.random(48) < 0.3, "ok"] = np.nan
    formulas = {
        "x y": "~ ok + cmean(ok) + (1 | `my class`)",
        "ok": "~ `x y` + cmean(`x y`) + (1 | `my class`)",
    }
    imp = df.mi.impute(formulas, m=2, iterations=3, rng=3)
    study = loads_spec(spec_to_toml(imp.spec))
    assert study.formulas == formulas
    assert study.cluster == "my class"
    assert_same_imputations(imp, study.impute(df))


def test_formula_text_parses_back():
    for text in [
        "~ x*z + cmean(x) + (1 + x | g)",
        "~ 1 + (0 + x || g)",
        "~ 0 + x",
        "~ `a b` + cmean(`a b`) + (1 | `my g`)",
    ]:
        f = mlimpute.parse_formula(text, "y")
        g = mlimpute.parse_formula(formula_text(f), "y")
        assert (g.fixed, g.group, g.random, g.cmeans) == (f.fixed, f.group, f.random, f.cmeans)


def test_study_toml_round_trip(tmp_path):
    study = StudySpec(
        {"grade": "~ skill + (1 | class)"},
        methods={"grade": "2l.norm"},
        cluster="class",
        m=7,
        iterations=9,
        seed=2**70,
        visit=("grade",),
        data="d/x.csv",
        columns=("a", "b"),
        output=OutputSpec("out/imp.zarr", "c_{i}.parquet", "pooled.csv"),
        analysis=AnalysisSpec(
            "grade ~ skill + (1 | class)", reml=False, tests=("skill = 0", "Intercept = 10")
        ),
        version="0.1.0",
    )
    back = loads_spec(study.to_toml(), tmp_path)
    assert back == study
    assert back.resolve(back.data) == tmp_path / "d" / "x.csv"


def test_read_spec_resolves_paths_and_fills_default_outputs(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "study.toml"
    path.write_text(
        '[data]\npath = "../d.csv"\n[imputation.formulas]\ny = "~ x"\n'
        '[analysis]\nformula = "y ~ x"\n[output]\ncompleted = false\n'
    )
    study = read_spec(path)
    assert study.base_dir == tmp_path / "sub"
    assert study.resolve(study.data).resolve() == (tmp_path / "d.csv").resolve()
    assert study.output == OutputSpec("study.nc", None, "study-pooled.csv")
    assert loads_spec('[imputation.formulas]\ny = "~ x"').output == OutputSpec()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[imputation\nm = 1", "invalid TOML"),
        ("foo = 1\n[imputation]\nm = 2", "foo: unknown key"),
        ("[imputation]\nchains = 2", "imputation.chains: unknown key"),
        ("[imputation]\nm = 0", "imputation.m: must be an integer ≥ 1, got 0"),
        ('[imputation]\nm = "5"', "imputation.m: must be an integer"),
        ("[imputation]\niterations = true", "imputation.iterations: must be an integer"),
        ("[imputation]\nseed = -1", "imputation.seed: must be an integer ≥ 0"),
        ("[imputation]\nseed = 1.5", "imputation.seed"),
        ("imputation = 3", "imputation: must be a table"),
        ("[data]\npath = 1\n[imputation]", "data.path: must be a non-empty string"),
        ("[imputation]\nformulas = 3", "imputation.formulas: must be a table"),
        ("[imputation.formulas]\ny = 3", "imputation.formulas.y: must be a string"),
        ('[imputation]\nvisit = "y"', "imputation.visit: must be a list of strings"),
        (
            '[imputation.formulas]\ny = "~ x"\n[imputation.methods]\nz = "norm"',
            "imputation.methods.z: a method for a variable without a formula",
        ),
        ("[imputation.options]\nfoo = 1", "imputation.options.foo: not an option"),
        ("[imputation.options]\nrng = 1", "imputation.options.rng: set 'rng' with its own key"),
        ('[imputation]\n[output]\ncompleted = "x.xlsx"', "output.completed: 'x.xlsx' must end"),
        ("[imputation]\n[output]\nimputations = 3", "output.imputations: must be a path or false"),
        ("[imputation]\n[analysis]\nreml = true", "analysis.formula: must be a non-empty string"),
        ('[imputation]\n[analysis]\nformula = "y ~ x"\nreml = "yes"', "analysis.reml"),
        ('[imputation]\n[analysis]\nformula = "y ~ x"\ntests = "x = 0"', "analysis.tests"),
        ("[data]\npath = 'x.csv'", "imputation: missing"),
    ],
)
def test_validation_names_the_key(text, match):
    with pytest.raises(SpecificationError, match=match.replace("(", r"\(")):
        loads_spec(text, source="s.toml")


def test_bad_formula_names_the_key():
    with pytest.raises(FormulaError, match=r"imputation\.formulas\.\"a b\": .*~"):
        loads_spec('[imputation.formulas]\n"a b" = "~ x +"')


def test_read_spec_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        read_spec(tmp_path / "nope.toml")


def test_run_writes_outputs_and_pools(data, tmp_path):
    data.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.toml").write_text(
        '[data]\npath = "d.csv"\n'
        "[imputation]\nm = 3\niterations = 4\nseed = 1\n"
        "[imputation.formulas]\n"
        'relation = "~ gender + grade + cmean(grade) + (1 | class)"\n'
        'grade = "~ gender + relation + cmean(relation) + (1 | class)"\n'
        '[output]\nimputations = "out/imp.nc"\ncompleted = "out/c_{i}.parquet"\n'
        '[analysis]\nformula = "grade ~ gender + relation + (1 | class)"\n'
        'tests = ["gender = 0"]\n'
    )
    lines = []
    with pytest.warns(mlimpute.MlimputeWarning, match="written by mlimpute 0.0.1"):
        res = run(replace(read_spec(tmp_path / "s.toml"), version="0.0.1"), log=lines.append)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in res.written)
    assert names == [
        "out/c_1.parquet",
        "out/c_2.parquet",
        "out/c_3.parquet",
        "out/imp.nc",
        "s-pooled.csv",
    ]
    assert lines[0].startswith("read d.csv (80 rows")
    back = mlimpute.io.open(tmp_path / "out" / "imp.nc")
    assert_same_imputations(res.imputed, back)
    pooled = pd.read_csv(tmp_path / "s-pooled.csv", index_col=0)
    assert pooled.index.tolist() == ["Intercept", "gender", "relation"]
    assert set(res.tests) == {"gender = 0"} and 0 <= res.tests["gender = 0"].p <= 1


def test_cluster_must_match_the_formulas(data):
    study = StudySpec(
        {"grade": "~ skill + (1 | class)"}, cluster="school", m=2, iterations=2, seed=1
    )
    # impute itself rejects a cluster column that is not in the data (naming it)
    with pytest.raises(SpecificationError, match="'school'"):
        study.impute(data[["class", "skill", "grade"]])


def test_data_columns_selects(tmp_path, data):
    data.to_csv(tmp_path / "d.csv", index=False)
    study = StudySpec(
        {"grade": "~ skill + (1 | class)"},
        data="d.csv",
        columns=("class", "skill", "grade"),
        base_dir=tmp_path,
    )
    assert list(study.read_data().columns) == ["class", "skill", "grade"]
    bad = StudySpec({}, data="d.csv", columns=("nope",), base_dir=tmp_path)
    with pytest.raises(SpecificationError, match=r"data.columns: \['nope'\]"):
        bad.read_data()


# -- defaults for `mlimpute init` -----------------------------------------------------------
def test_default_formulas(data):
    f = default_formulas(data, "class")
    assert f == {
        "relation": "~ skill + gender + cmean(gender) + grade + cmean(grade) + (1 | class)",
        "grade": ("~ skill + gender + cmean(gender) + relation + cmean(relation) + (1 | class)"),
    }
    assert default_formulas(data)["grade"] == "~ class + skill + gender + relation"
    with pytest.raises(SpecificationError, match="'klass'"):
        default_formulas(data, "klass")


def test_init_spec_leaves_out_what_cannot_be_imputed_and_runs(data):
    # a datetime with gaps cannot be imputed: left out of the models and of data.columns
    stamp = pd.Series(pd.Timestamp("2024-01-01"), index=data.index)
    df = data.assign(**{"the note": stamp.where(data["grade"].notna())})
    text = init_spec(df, cluster="class", data="d.csv", m=2, iterations=2, seed=4)
    assert "REVIEW THE FORMULAS" in text and "the note" in text
    study = loads_spec(text)
    assert study.columns == ("class", "skill", "gender", "relation", "grade")
    assert "`the note`" not in study.formulas["grade"]
    imp = study.impute(df[list(study.columns)])
    assert imp.variables == ["relation", "grade"] and imp.spec.seed == 4
