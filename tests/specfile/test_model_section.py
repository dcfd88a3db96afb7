"""The ``[model]`` table of specification files: model-based imputation from the analysis
model loads, validates (naming the file and the key), runs and reruns bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mlimpute
from mlimpute.errors import FormulaError, SpecificationError
from mlimpute.specfile import StudySpec, init_spec, loads_spec, read_spec, run, spec_to_toml

MODEL = "grade ~ skill + gender + relation + (1 + relation | class)"


@pytest.fixture(scope="module")
def data():
    # grade and relation incomplete; relation a continuous level-1 predictor
    return mlimpute.datasets.classroom(2, n_classes=10, class_size=8, rng=4).incomplete


@pytest.fixture(scope="module")
def imp(data):
    return data.mi.impute(model=MODEL, m=2, iterations=3, rng=7)


def assert_same(a, b):
    assert a.variables == b.variables
    for v in a.variables:
        np.testing.assert_array_equal(a.dataset[v].values, b.dataset[v].values)


def test_spec_of_a_model_based_run_writes_a_model_table_and_reruns_bit_for_bit(data, imp):
    text = spec_to_toml(imp.spec, data="classroom.csv")
    assert "[model]" in text and "[imputation]" not in text
    study = loads_spec(text)
    assert study.model == MODEL and study.formulas is None and study.seed == 7
    assert (study.m, study.iterations) == (2, 3)
    again = study.impute(data)
    assert_same(imp, again)
    assert str(again.spec.model) == str(imp.spec.model)
    # the TOML of the rerun is the TOML of the run
    assert spec_to_toml(again.spec, data="classroom.csv") == text
    assert imp.spec.to_toml() == spec_to_toml(imp.spec)


def test_auxiliary_and_options_round_trip(data):
    df = data.assign(noise=np.linspace(0.0, 1.0, len(data)))
    imp = df.mi.impute(model=MODEL, m=2, iterations=2, rng=3, auxiliary=["noise"])
    study = loads_spec(spec_to_toml(imp.spec, options={"n_jobs": 1}))
    assert study.auxiliary == ("noise",) and dict(study.options) == {"n_jobs": 1}
    assert_same(imp, study.impute(df))


def test_spec_reloaded_from_an_imputation_file_reruns_bit_for_bit(data, imp, tmp_path):
    path = tmp_path / "imp.nc"
    imp.to_netcdf(path)
    loaded = mlimpute.open(path)
    assert_same(imp, loads_spec(spec_to_toml(loaded.spec)).impute(data))


def test_run_pools_the_analysis_model_by_default(data, tmp_path):
    data.to_csv(tmp_path / "d.csv", index=False)
    model = "grade ~ skill + relation + (1 | class)"  # a random intercept: a quick fit
    (tmp_path / "s.toml").write_text(
        f'[data]\npath = "d.csv"\n[model]\nformula = "{model}"\nm = 2\niterations = 2\nseed = 1\n'
    )
    study = read_spec(tmp_path / "s.toml")
    assert study.output.pooled == "s-pooled.csv"  # an analysis to pool: the model's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run(study)
    assert out.pooled.formula == model
    assert list(out.pooled.summary().index) == ["Intercept", "skill", "relation"]
    assert (tmp_path / "s-pooled.csv").exists() and (tmp_path / "s.nc").exists()
    # an [analysis] table replaces the default
    (tmp_path / "t.toml").write_text(
        (tmp_path / "s.toml").read_text()
        + '[analysis]\nformula = "grade ~ relation + (1 | class)"\n'
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run(tmp_path / "t.toml")
    assert list(out.pooled.summary().index) == ["Intercept", "relation"]


def test_study_spec_written_by_hand():
    s = StudySpec(None, m=3, seed=2, model=MODEL, auxiliary=("a",))
    doc = loads_spec(s.to_toml())
    assert doc == s
    assert s.pooled_analysis.formula == MODEL
    assert StudySpec({"grade": "~ skill + (1 | class)"}).pooled_analysis is None


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        (
            f'[imputation]\nm = 2\n[model]\nformula = "{MODEL}"\n',
            r"s\.toml: model: .*either an \[imputation\] table .* or a \[model\] table",
        ),
        ("[model]\nm = 2\n", r"s\.toml: model\.formula: must be a non-empty string"),
        ("[model]\nformula = 3\n", r"s\.toml: model\.formula: must be a non-empty string"),
        (
            '[model]\nformula = "~ skill + (1 | class)"\n',
            r"s\.toml: model\.formula: .*needs an outcome",
        ),
        (
            f'[model]\nformula = "{MODEL}"\nformulas = {{}}\n',
            r"s\.toml: model\.formulas: unknown key; \[model\] accepts formula, auxiliary",
        ),
        (
            f'[model]\nformula = "{MODEL}"\nauxiliary = "a"\n',
            r"s\.toml: model\.auxiliary: must be a list of strings",
        ),
        (
            f'[model]\nformula = "{MODEL}"\nauxiliary = ["skill"]\n',
            r"s\.toml: model\.auxiliary: 'skill' is already in the analysis model",
        ),
        (
            f'[model]\nformula = "{MODEL}"\nauxiliary = ["a", "a"]\n',
            r"s\.toml: model\.auxiliary: lists a column twice",
        ),
        (f'[model]\nformula = "{MODEL}"\nm = 0\n', r"s\.toml: model\.m: must be an integer ≥ 1"),
        (
            f'[model]\nformula = "{MODEL}"\nseed = -1\n',
            r"s\.toml: model\.seed: must be an integer ≥ 0",
        ),
        (
            f'[model]\nformula = "{MODEL}"\n[model.options]\nformulas = {{}}\n',
            r"s\.toml: model\.options\.formulas: not with model-based imputation",
        ),
        (
            f'[model]\nformula = "{MODEL}"\n[model.options]\nauxiliary = ["a"]\n',
            r"s\.toml: model\.options\.auxiliary: set it with model\.auxiliary",
        ),
        (
            f'[model]\nformula = "{MODEL}"\n[model.options]\nmodel = "y ~ x"\n',
            r"s\.toml: model\.options\.model: set it with model\.formula",
        ),
        (
            f'[imputation]\n[imputation.options]\nmodel = "{MODEL}"\n',
            r"s\.toml: imputation\.options\.model: model-based imputation has a table of its own",
        ),
        (
            f'[model]\nformula = "{MODEL}"\n[model.options]\nbogus = 1\n',
            r"s\.toml: model\.options\.bogus: not an option of mlimpute\.impute",
        ),
    ],
)
def test_model_table_errors_name_the_file_and_the_key(tmp_path, toml, match):
    (tmp_path / "s.toml").write_text(toml)
    with pytest.raises(SpecificationError, match=match):
        read_spec(tmp_path / "s.toml")


@pytest.mark.parametrize(
    "formula",
    [
        "grade ~ skill ~ gender",  # syntax
        "grade ~ skill + I(__import__('os').system('true')) + (1 | class)",  # not allowed
    ],
)
def test_model_formula_goes_through_the_formula_grammar(tmp_path, formula):
    (tmp_path / "s.toml").write_text(f'[model]\nformula = "{formula}"\n')
    with pytest.raises(FormulaError, match=r"s\.toml: model\.formula: "):
        read_spec(tmp_path / "s.toml")


def test_init_spec_with_a_model(data):
    df = data.assign(junk=data["grade"].isna().map({True: 1.0, False: np.nan}))
    text = init_spec(df, model=MODEL, data="d.csv", m=2, iterations=2, seed=5)
    study = loads_spec(text)
    assert study.model == MODEL and study.seed == 5
    assert "junk" not in study.columns  # incomplete, outside the model: left out
    assert "relation ~ skill + gender + (1 | class)" in text  # the factorisation, commented
    assert "grade: the analysis model" in text
    imp = study.impute(df[list(study.columns)])
    assert set(imp.variables) == {"relation", "grade"}


def test_init_spec_model_errors(data):
    with pytest.raises(SpecificationError, match="unknown column"):
        init_spec(data, model="grade ~ nope + (1 | class)")
    with pytest.raises(SpecificationError, match=r"auxiliary .*--model"):
        init_spec(data, auxiliary=["skill"])
    with pytest.raises(FormulaError):
        init_spec(data, model="grade ~ skill ~ gender")
