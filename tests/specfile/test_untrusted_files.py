"""Specification files from someone else: whatever they hold, reading and running one
raises the package's errors (naming the key), before anything is imputed or written."""

from __future__ import annotations

import os

import pytest

import mlimpute
from mlimpute.errors import FormulaError, SpecificationError
from mlimpute.specfile import OutputSpec, StudySpec, loads_spec, read_spec, run

HEAD = (
    '[imputation]\nm = 2\niterations = 2\n[imputation.formulas]\ngrade = "~ skill + (1 | class)"\n'
)


def test_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "s.toml").write_bytes(b"[imputation]\nm = 2 # caf\xe9\n")
    with pytest.raises(
        SpecificationError, match=r"s\.toml: not a text file in UTF-8 \(byte 0xe9 at offset 24\)"
    ):
        read_spec(tmp_path / "s.toml")


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 100_000 + "]" * 100_000,  # beyond the parser's recursion
        "x = " + "[" * 50 + "]" * 50,  # parsed, then measured
        "[imputation.options]\n" + "a = { " * 30 + "b = 1" + " }" * 30,
    ],
    ids=["parser", "arrays", "tables"],
)
def test_deep_nesting_is_refused(text):
    with pytest.raises(SpecificationError, match="nested more than 20 deep"):
        loads_spec(text)


@pytest.mark.parametrize(
    "seed",
    [
        '"' + "9" * 5000 + '"',
        '"²"',
        str(2**128),  # a bare integer: Python reads it, beyond 128 bits
        '"' + str(2**128) + '"',
        "-1",
        "1.5",
        '"0x10"',
    ],
)
def test_seeds_beyond_128_bits_or_not_integers_are_refused(seed):
    with pytest.raises(
        SpecificationError, match=r"imputation\.seed: must be an integer ≥ 0 and below 2\*\*128"
    ):
        loads_spec(HEAD.replace("m = 2\n", f"m = 2\nseed = {seed}\n"))


def test_the_largest_seed_and_a_number_too_long_for_python():
    assert loads_spec(HEAD).seed is None
    top = 2**128 - 1
    assert loads_spec(HEAD.replace("m = 2\n", f'm = 2\nseed = "{top}"\n')).seed == top
    with pytest.raises(SpecificationError, match="invalid TOML: a value cannot be read"):
        loads_spec(HEAD.replace("m = 2\n", f"m = 2\nseed = {'9' * 5000}\n"))


def test_a_deeply_nested_formula_is_a_formula_error():
    deep = "(" * 3000 + "skill" + ")" * 3000
    with pytest.raises(FormulaError, match=r"imputation\.formulas\.grade: "):
        loads_spec(HEAD.replace("~ skill", f"~ {deep}"))
    with pytest.raises(FormulaError, match=r"analysis\.formula: "):
        loads_spec(HEAD + f'[analysis]\nformula = "grade ~ {deep}"\n')


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("completed", "a\\u0000b.csv", "holds the control character '\\\\x00'"),
        ("imputations", "a\\nb.nc", "holds the control character '\\\\n'"),
        (
            "pooled",
            "x/" + "p" * 300 + ".csv",
            "is 304 bytes long; the file system allows at most 255",
        ),
        ("imputations", "é" * 130 + ".nc", "is 263 bytes long"),  # bytes, not characters
    ],
)
def test_output_names_are_checked_when_read(key, value, match):
    with pytest.raises(SpecificationError, match=rf"output\.{key}: .*{match}"):
        loads_spec(HEAD + f'[output]\n{key} = "{value}"\n')


def test_a_data_path_with_a_nul(tmp_path):
    with pytest.raises(SpecificationError, match=r"data\.path: .*control character"):
        loads_spec(HEAD + '[data]\npath = "d\\u0000.csv"\n')


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (OutputSpec(completed="a\0b.csv"), r"output\.completed: .*control character '\\x00'"),
        (OutputSpec(imputations="n" * 300 + ".nc"), r"output\.imputations: .* is 303 bytes"),
        (OutputSpec(completed="c_{i:09d}_" + "a" * 240 + ".csv"), r"'c_000000001_a.* 256 bytes"),
    ],
)
def test_run_checks_every_output_name_before_imputing(tmp_path, output, match):
    """A StudySpec built in Python, not read from a file: run() checks the names (the
    expanded ones too) against the directory's own limit before anything is imputed."""
    df = mlimpute.datasets.classroom(1, n_classes=5, class_size=4, rng=1).incomplete
    study = StudySpec(
        {"grade": "~ skill + (1 | class)"},
        m=2,
        iterations=2,
        seed=1,
        output=output,
        base_dir=tmp_path,
    )
    with pytest.raises(SpecificationError, match=match):
        run(study, df)
    assert not any(tmp_path.iterdir())
    nul = StudySpec({"grade": "~ skill"}, data="d\0.csv", base_dir=tmp_path)
    with pytest.raises(SpecificationError, match=r"data\.path: .*control character"):
        run(nul)


def test_an_output_hard_linked_to_the_data_file_is_refused(tmp_path):
    df = mlimpute.datasets.classroom(1, n_classes=5, class_size=4, rng=1).incomplete
    df.to_csv(tmp_path / "d.csv", index=False)
    os.link(tmp_path / "d.csv", tmp_path / "pooled.csv")
    data = (tmp_path / "d.csv").read_bytes()
    (tmp_path / "s.toml").write_text(
        HEAD + '[data]\npath = "d.csv"\n[output]\nimputations = false\ncompleted = false\n'
        'pooled = "pooled.csv"\n[analysis]\nformula = "grade ~ skill + (1 | class)"\n'
    )
    with pytest.raises(SpecificationError, match=r"output\.pooled: .* is the data file"):
        run(tmp_path / "s.toml")
    assert (tmp_path / "d.csv").read_bytes() == data


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("[-1]", "must be a list of at most 32 integers ≥ 0"),
        ('["1"]', "must be a list of at most 32 integers ≥ 0"),
        ("3", "must be a list of at most 32 integers ≥ 0"),
        (str(list(range(33))), "must be a list of at most 32 integers ≥ 0"),
    ],
)
def test_spawn_key_is_checked(value, match):
    text = HEAD.replace("m = 2\n", f"m = 2\nseed = 7\nspawn_key = {value}\n")
    with pytest.raises(SpecificationError, match=rf"imputation\.spawn_key: {match}"):
        loads_spec(text)
    with pytest.raises(SpecificationError, match=r"imputation\.spawn_key: needs a seed"):
        loads_spec(HEAD.replace("m = 2\n", "m = 2\nspawn_key = [1]\n"))


@pytest.mark.parametrize("section", ["imputation", "model"])
def test_an_unbounded_number_of_imputations_is_refused(section):
    """Each imputation may name an output file, and every name is checked before the
    run: m = 10**9 made that list of names exhaust the memory first."""
    text = HEAD.replace("m = 2", "m = 1000000000")
    if section == "model":
        text = '[model]\nformula = "grade ~ skill + (1 | class)"\nm = 1000000000\n'
    with pytest.raises(
        SpecificationError, match=rf"{section}\.m: must be at most 100,000 in a specification"
    ):
        loads_spec(text)
    assert loads_spec(text.replace("1000000000", "100000")).m == 100_000
