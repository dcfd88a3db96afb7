"""Formulas are data, never code: every route refuses a formula that would run code.

The payload below ran a shell command through formulaic's evaluation of ``I(...)`` before
mlimpute checked formulas against its own grammar; each test gives it to one entry point
and asserts the marker file was not created and the named error was raised.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from formulaic import model_matrix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlimpute
from mlimpute import cli
from mlimpute.errors import DataError, FormulaError, UnsupportedError
from mlimpute.spec.formula import ParsedFormula, parse_formula
from mlimpute.spec.grammar import (
    ALLOWED_FUNCTIONS,
    CONTRASTS,
    EVALUATION_CONTEXT,
    validate_formula,
)

ROOT = Path(__file__).resolve().parents[2]


def payload(marker: Path) -> str:
    return (
        "~ x + I(np.vectorize(I).__init__.__globals__['__builtins__']['__import__']('os')"
        f".system('touch {marker}')) + (1|g)"
    )


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "the formula ran a shell command"


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=60),
            "y": rng.normal(size=60),
            "g": np.repeat(np.arange(6), 10),
        }
    )
    df.loc[::7, "y"] = np.nan
    return df


@pytest.fixture(scope="module")
def imp(frame):
    return frame.mi.impute({"y": "~ x + (1 | g)"}, m=2, iterations=2, rng=1)


# --------------------------------------------------------------------------------------
# (a) every route, given the known payload


def test_parse_formula_refuses_payload(marker):
    with pytest.raises(FormulaError, match=r"'np\.vectorize' is not allowed") as exc:
        parse_formula(payload(marker))
    caret = str(exc.value).splitlines()[-1]
    assert caret.index("^") - 4 == payload(marker).index("np.vectorize")


def test_impute_refuses_payload(frame, marker):
    with pytest.raises(FormulaError, match="not allowed"):
        frame.mi.impute({"y": payload(marker)}, m=2, iterations=2, rng=1)
    with pytest.raises(FormulaError, match="not allowed"):
        mlimpute.impute(frame, {"y": payload(marker)}, m=2, iterations=2, rng=1)


def test_fit_refuses_payload(imp, marker):
    with pytest.raises(FormulaError, match="not allowed"):
        imp.fit("y " + payload(marker))


def test_from_completed_refuses_payload(frame, marker):
    done = mlimpute.from_completed([frame.fillna(0.0), frame.fillna(1.0)])
    with pytest.raises(FormulaError, match="not allowed"):
        done.fit("y " + payload(marker))


def test_hand_built_parsed_formula_is_refused(frame, imp, marker):
    """A ParsedFormula built by hand (not through parse_formula) is checked too."""
    bad_fixed = payload(marker).split("~")[1].split("+ (1|g)")[0].strip()
    parsed = ParsedFormula("y ~ x", "y", bad_fixed)
    with pytest.raises(FormulaError, match="not allowed"):
        imp.fit(parsed)


def _spec_file(tmp_path, frame, formula: str, analysis: str | None = None) -> Path:
    frame.to_csv(tmp_path / "data.csv", index=False)
    text = (
        '[data]\npath = "data.csv"\n[imputation]\nm = 2\niterations = 2\nseed = 1\n'
        f'[imputation.formulas]\ny = "{formula}"\n'
    )
    if analysis is not None:
        text += f'[analysis]\nformula = "{analysis}"\n'
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_spec_file_refuses_payload(tmp_path, frame, marker, capsys):
    path = _spec_file(tmp_path, frame, payload(marker))
    with pytest.raises(FormulaError, match=r"spec\.toml: imputation\.formulas\.y: .*not allowed"):
        mlimpute.read_spec(path)
    assert cli.main(["run", str(path)]) == 2
    assert "not allowed" in capsys.readouterr().err
    path = _spec_file(tmp_path, frame, "~ x + (1 | g)", "y " + payload(marker))
    with pytest.raises(FormulaError, match=r"spec\.toml: analysis\.formula: .*not allowed"):
        mlimpute.read_spec(path)


def _tamper(src: Path, dst: Path, edit) -> None:
    zarr = src.suffix == ".zarr"
    kw = {"engine": "zarr", "consolidated": False} if zarr else {"engine": "h5netcdf"}
    with xr.open_dataset(src, decode_cf=False, **kw) as ds:
        root = ds.load()
    with xr.open_dataset(src, group="data", decode_cf=False, **kw) as ds:
        data = ds.load()
    spec = json.loads(root.attrs["mlimpute_spec"])
    edit(spec["variables"][0])
    root.attrs["mlimpute_spec"] = json.dumps(spec)
    if zarr:
        root.to_zarr(dst, mode="w", consolidated=False)
        data.to_zarr(dst, mode="w", group="data", consolidated=False)
    else:
        root.to_netcdf(dst, mode="w", engine="h5netcdf")
        data.to_netcdf(dst, mode="a", engine="h5netcdf", group="data")


@pytest.mark.parametrize("ext", ["nc", "zarr"])
@pytest.mark.parametrize("field", ["text", "formula", "fixed", "random"])
def test_stored_spec_with_payload_is_refused(tmp_path, imp, marker, ext, field):
    src = tmp_path / f"imp.{ext}"
    mlimpute.io.save(imp, src)
    bad = payload(marker)
    bad_rhs = bad.split("~")[1].split("+ (1|g)")[0].strip()

    def edit(v):
        if field == "text":
            v["text"] = v["parsed"]["text"] = "y " + bad
        elif field == "formula":
            v["formula"] = "y " + bad
        elif field == "fixed":
            v["parsed"]["fixed"] = bad_rhs
        else:
            v["parsed"]["random"][0]["terms"] = bad_rhs

    dst = tmp_path / f"tampered.{ext}"
    _tamper(src, dst, edit)
    with pytest.raises(DataError) as exc:
        mlimpute.open(dst)
    msg = str(exc.value)
    assert str(dst) in msg and "np.vectorize" in msg and "refused" in msg


def test_evaluation_context_hides_builtins(tmp_path):
    """Defence behind the grammar: evaluated directly, builtins are refused stand-ins."""
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    for expr in [
        "I(__import__('os'))",
        "I(open('f'))",
        "I(getattr(x, 'sum'))",
        "I(eval('1'))",
        "I(np.vectorize(I))",
        "I(exec('1'))",
    ]:
        with pytest.raises(Exception, match="not available|may not be called|no attribute"):
            model_matrix(expr, df, context=EVALUATION_CONTEXT)
    assert isinstance(EVALUATION_CONTEXT["np"].log(np.e), float)


# --------------------------------------------------------------------------------------
# named errors: syntax inside I(), non-finite transforms


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("~ x + I(x +* 2)", "*"),
        ("~ x + I(x ** )", ")"),
        ("~ x + I((x)", "("),
        ("~ x + I(x; 2)", ";"),
        ("~ x + I(x[0])", "["),
        ("~ x + I(lambda: 1)", "lambda"),
        ("~ x + I([v for v in x])", "["),
        ("~ x + I((v := x))", ":="),
        ("~ x + I('a')", "'a'"),
        ("~ x + C(x, levels=['a'], spans_intercept=False)", "spans_intercept"),
        ("~ x + np.random.normal(x)", "np.random.normal"),
        ("~ x + x.__class__", "x.__class__"),
    ],
)
def test_syntax_errors_inside_calls_are_formula_errors(text, token):
    with pytest.raises(FormulaError) as exc:
        parse_formula(text, "y")
    lines = str(exc.value).splitlines()
    assert lines[-2].strip() == text
    pos = lines[-1].index("^") - 4
    assert text[pos:].startswith(token), (text, pos)


@pytest.mark.parametrize(
    ("term", "fragment"),
    [
        ("log(x)", r"'log\(x\)' of the column\(s\) \['x'\] is NaN"),
        ("I(x / 0)", r"'I\(x / 0\)' of the column\(s\) \['x'\] is .*inf"),
    ],
)
def test_non_finite_transforms_are_data_errors(frame, term, fragment):
    with pytest.raises(DataError, match=fragment):
        frame.mi.impute({"y": f"~ {term} + (1 | g)"}, m=2, iterations=2, rng=1)


def test_non_finite_transform_in_analysis_is_a_data_error(imp):
    with pytest.raises(DataError, match=r"'np\.sqrt\(x\)' of the column\(s\) \['x'\] is NaN"):
        imp.fit("y ~ np.sqrt(x) + (1 | g)")


# --------------------------------------------------------------------------------------
# formulas that would hang, overflow or recurse: refused before anything evaluates them


def _refused_at(text: str, token: str, fragment: str, response: str | None = "y") -> None:
    with pytest.raises(FormulaError, match=re.escape(fragment)) as exc:
        parse_formula(text, response)
    lines = str(exc.value).splitlines()
    assert lines[-2].strip() == text
    pos = lines[-1].index("^") - 4
    assert text[pos:].startswith(token), (text, pos)


@pytest.mark.parametrize(
    ("text", "token", "fragment"),
    [
        # Python's big integers: 10**(10**10) never finishes, 2**10000 overflows a float
        ("~ x + I(10**10**10) + (1|g)", "10**10)", "not '10**10'"),
        ("~ x + I(2**10000)", "10000", "from -1000 to 1000"),
        ("~ x + I(x**z)", "z)", "exponent of '**' must be a number"),
        ("~ x + I(2**x)", "x)", "not 'x'"),
        ("~ x + I(2**1000 * 2**1000)", "* 2", "too large for a float"),
        ("~ x + I(x + 1/0)", "/0", "divides by zero"),
        ("~ x + I(x * 0**-1)", "**-1", "divides by zero"),
        ("~ x + I(x + (-8)**(1/3))", "**(1/3)", "complex"),
        ("~ x + I(x + 12345678901234567)", "12345678901234567", "more than 15 digits"),
        ("~ x + 12345678901234567", "12345678901234567", "more than 15 digits"),
        ("~ x + I(x * 1e400)", "1e400", "too large to be a float"),
        ("~ x + I(x + 007)", "007", "leading zero"),
        ("~ (x + z)**4", "4", "whole number from 1 to 3"),
        ("~ (x + z)^0", "0", "whole number from 1 to 3"),
        ("~ x + poly(x, 1000)", "1000", "up to 100"),
    ],
)
def test_constant_arithmetic_that_cannot_be_done_cheaply_is_refused(text, token, fragment):
    _refused_at(text, token, fragment)


@pytest.mark.parametrize(
    "term",
    [
        "x**2",
        "I(x**2)",
        "I(x**0.5)",
        "I((x - 1)**3)",
        "I(x**-1)",
        "I(x**(1/3))",
        "I(x**2**3)",
        "I(-2**2 + x)",
        "I(x * 2**1000)",
        "I(x + 1e300)",
        "I(x + 123456789012345)",
        "poly(x, 3)",
        "(x + z)**3",
        "(x + z)^2",
    ],
)
def test_powers_a_user_writes_still_parse(term):
    parse_formula(f"~ {term} + (1 | g)", "y")


def test_constant_power_is_refused_on_every_route_before_the_chains(frame, imp):
    """The formula that hung: refused at once through impute, model= and fit()."""
    text = "~ x + I(10**10**10) + (1|g)"
    with pytest.raises(FormulaError, match=r"not '10\*\*10'"):
        frame.mi.impute({"y": text}, m=2, iterations=2, rng=1)
    with pytest.raises(FormulaError, match=r"not '10\*\*10'"):
        mlimpute.impute(frame, model="y " + text, m=2, iterations=2, rng=1)
    with pytest.raises(FormulaError, match=r"not '10\*\*10'"):
        imp.fit("y " + text)
    with pytest.raises(FormulaError, match="from -1000 to 1000"):
        mlimpute.impute(frame, {"y": "~ x + I(2**10000) + (1|g)"}, m=2, iterations=2, rng=1)
    out = mlimpute.impute(frame, model="y ~ x + I(x**2) + (1 | g)", m=1, iterations=2, rng=1)
    assert out.complete(1)["y"].notna().all()


def _nested(depth: int) -> str:
    return "~ " + "(" * depth + "x" + ")" * depth + " + I(" + "- " * (depth - 1) + "x) + (1|g)"


def test_nesting_is_refused_beyond_the_documented_depth(frame):
    from mlimpute.spec.grammar import MAX_DEPTH

    assert MAX_DEPTH == 50
    # just allowed: 50 parentheses, 50 levels of call and signs; the imputation runs
    done = frame.mi.impute({"y": _nested(MAX_DEPTH)}, m=1, iterations=2, rng=1)
    assert done.complete(1)["y"].notna().all()
    text = "~ " + "(" * 51 + "x" + ")" * 51
    _refused_at(text, "(x)", "nested more than 50 deep")
    _refused_at("~ x + I(" + "- " * 50 + "x)", "- x)", "nested more than 50 deep")
    _refused_at("~ x + I(" + "log(" * 50 + "z" + ")" * 51, "(z)", "nested more than 50")
    # the QA reproducer: 500 parentheses gave a RecursionError
    text = "~ " + "(" * 500 + "x" + ")" * 500 + " + (1|g)"
    with pytest.raises(FormulaError, match="nested more than 50 deep"):
        frame.mi.impute({"y": text}, m=2, iterations=2, rng=1)


# --------------------------------------------------------------------------------------
# (b) property: nothing outside the allow-list is ever called


_VALID = [
    "x",
    "z",
    "c",
    "`a b`",
    "1",
    "0",
    "2",
    "+",
    "-",
    "*",
    "/",
    ":",
    "**",
    "^",
    "(",
    ")",
    "(1 | g)",
    "|",
    "||",
    "I(",
    "log(",
    "np.log(",
    "np.exp(",
    "abs(",
    "C(",
    "poly(",
    "scale(",
    "center(",
    "sqrt(",
    "cmean(",
    "contr.sum",
    "Sum",
    "levels=",
    "['a']",
    "2)",
    "x)",
    "z)",
]
_DANGER = [
    ".",
    "[",
    "]",
    "__class__",
    "lambda",
    "'os'",
    '"str"',
    "import",
    "getattr(",
    "eval(",
    "exec(",
    "open(",
    "__import__(",
    ",",
    "=",
    ":=",
    "np",
    "np.vectorize(",
    "x.__class__",
    "__builtins__",
    "__globals__",
    "for",
    "in",
    "{",
    "}",
    ";",
    "@",
    "os.system(",
    "compile(",
    "globals(",
    "vars(",
    "type(",
    "x.real",
    "lambda:",
    "\\",
    "#",
    "!",
    "x.y",
    "`x`",
    "contr.mro(",
    "Q(",
    "lag(",
    "hashed(",
]
_FUNCS = [
    *ALLOWED_FUNCTIONS,
    "getattr",
    "eval",
    "__import__",
    "open",
    "np.vectorize",
    "np.random.normal",
    "Q",
    "lag",
    "hashed",
    "exp2",
    "x.sum",
    "contr.mro",
    "type",
]
_ARGS = [
    "x",
    "z",
    "c",
    "x, 2",
    "x, degree=2",
    "x, df=4",
    "c, contr.sum",
    "c, Sum",
    "c, levels=['b', 'a']",
    "x.__class__",
    "'os'",
    "x, key=len",
    "x)(",
    "[x]",
    "x for x in z",
    "*x",
    "**x",
    "x, _state={}",
]


def _frame() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "z": [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0],
            "c": pd.Categorical(list("abababab")),
            "g": [1, 1, 2, 2, 3, 3, 4, 4],
            "a b": np.linspace(1.0, 2.0, 8),
        }
    )
    for v in ("x", "z", "a b"):
        df[f"cmean({v})"] = df.groupby("g")[v].transform("mean")
    return df


def _allowed_code() -> set:
    """Code objects of the callables a formula may reach (formulaic compiles formula
    code with the file name "", so calls made from such frames are the formula's)."""
    out = set()
    for value in EVALUATION_CONTEXT.values():
        if type(value).__name__ == "_Refused":
            continue
        members = vars(value).values() if isinstance(value, SimpleNamespace) else [value]
        for f in members:
            f = getattr(f, "__func__", f)
            if inspect.isfunction(f):
                out.add(f.__code__)
    return out


_ALLOWED_CODE = _allowed_code()
#: What formulaic's machinery itself calls from formula code: its name lookups and
#: stateful-transform bookkeeping, and the operator and ufunc protocols of pandas/numpy.
_INFRASTRUCTURE = {"__getitem__", "<lambda>", "new_method"}
_SPIED = ("__import__", "eval", "exec", "getattr", "open", "compile", "globals", "vars")


@contextlib.contextmanager
def _watch(violations: list):
    """Record every call made directly from formula code that the allow-list does not
    cover, and every call of the spied builtins from formula code."""

    def profile(frame, event, arg):
        if event == "c_call" and frame.f_code.co_filename == "":
            if not (
                getattr(arg, "__name__", "") == "get"
                and isinstance(getattr(arg, "__self__", None), dict)
            ):
                violations.append(("builtin", repr(arg)))
        elif event == "call":
            caller = frame.f_back
            if caller is not None and caller.f_code.co_filename == "":
                code = frame.f_code
                if not (
                    code in _ALLOWED_CODE
                    or code.co_name in _INFRASTRUCTURE
                    or re.fullmatch(r"__\w+__", code.co_name)
                ):
                    violations.append(("function", code.co_name, code.co_filename))

    originals = {name: getattr(builtins, name) for name in _SPIED}

    def spy(name):
        original = originals[name]

        def wrapper(*args, **kwargs):
            if sys._getframe(1).f_code.co_filename == "":
                violations.append(("spied builtin", name))
                raise AssertionError(f"formula code called builtins.{name}")
            return original(*args, **kwargs)

        return wrapper

    for name in _SPIED:
        setattr(builtins, name, spy(name))
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        for name, f in originals.items():
            setattr(builtins, name, f)


def _check(text: str) -> None:
    try:
        parsed = parse_formula(text)
    except (FormulaError, UnsupportedError):
        return
    calls = validate_formula(text).calls
    assert set(calls) <= set(ALLOWED_FUNCTIONS) | set(CONTRASTS)
    df = _frame()
    violations: list = []
    for rhs in [parsed.fixed, *(b.terms for b in parsed.random)]:
        with _watch(violations), np.errstate(all="ignore"):
            try:
                model_matrix(rhs, df, context=EVALUATION_CONTEXT, na_action="ignore")
            except Exception:  # noqa: BLE001 - a formula may fail on this data; only calls matter
                pass
    assert not violations, (text, violations)


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    st.lists(st.sampled_from(_VALID * 3 + _DANGER), min_size=1, max_size=10),
    st.sampled_from([" ", ""]),
)
def test_random_token_sequences_call_only_allowed_functions(tokens, sep):
    _check("y ~ " + sep.join(tokens))


@_SETTINGS
@given(st.sampled_from(_FUNCS), st.sampled_from(_ARGS), st.sampled_from(_VALID + _DANGER))
def test_random_calls_call_only_allowed_functions(func, args, extra):
    _check(f"y ~ x + {func}({args})")
    _check(f"y ~ x + I({func}({args}) {extra} x)")


def test_watch_detects_a_call_outside_the_allow_list():
    """The property above can fail: a builtin reached from formula code is recorded."""
    violations: list = []
    ctx = dict(EVALUATION_CONTEXT, sum=sum)
    with _watch(violations):
        model_matrix("I(sum(x))", pd.DataFrame({"x": [1.0, 2.0]}), context=ctx)
    assert violations and violations[0][0] == "builtin"


# --------------------------------------------------------------------------------------
# (c) the formulas of the documentation and the test suite still parse


def _documented_formulas() -> list[str]:
    found = set()
    sources = [
        ROOT / "README.md",
        *sorted((ROOT / "tests").rglob("test_*.py")),
        *sorted(p for p in (ROOT / "mlimpute").rglob("*.py") if "models" not in p.parts),
    ]
    for path in sources:
        if path.name == "test_formulas.py":
            continue
        for m in re.finditer(r"([\"'])([^\"'\n]*~[^\"'\n]*)\1", path.read_text("utf-8")):
            text = m.group(2)
            if re.fullmatch(r"\s*[\w.`]*\s*~\s*[\w.`(].*", text) and "{" not in text:
                found.add(text)
    return sorted(found)


#: formulas the test suite and docstrings write on purpose to be refused
_REFUSED_ON_PURPOSE = {
    "grade ~ skill ~ gender",
    "y ~ x ~ z",
    "~ (skill",
    "~ (x + y",
    "~ skill $ gender",
    "~ skill +",
    "~ skill + ( | class)",
    "~ skill + (1 | )",
    "~ skill + (1 | class/)",  # malformed grouping factors
    "~ skill + (1 | class:+gender)",
    "~ x + (1 | /a)",
    "~ x + (1 | a + b)",
    "~ x + (1 | a/)",
    "~ x + (1 | a:)",
    "~ x + (1 | a:log(b))",
    "~ skill + gender | class",
    "~ x +",
    "~ x + (1 | g h)",
    "~ x + + z",
    "~ x + I(x.__class__)",
    "~ x | g",
    "~ x)",
    # cmean(x, factor): the factor is column names joined by ':' only
    "~ cmean(x, 1)",
    "~ cmean(x, log(s))",
    "~ cmean(x, s, t)",
    "~ cmean(x, s.__class__)",
    "~ cmean(x, s/t)",
    "~ cmean(x, school=s)",
    # a Python keyword inside a call must be backquoted
    "~ C(class) + (1 | g)",
    # an argument given twice, or unknown, or not a literal
    "~ C(g, Treatment(1, reference=2))",
    "~ C(g, Treatment(1, 2))",
    "~ C(g, Treatment(ref=1))",
    "~ C(g, Treatment(reference=x))",
    "~ C(g, Sum, contrasts=Sum)",
    "~ poly(x, 2, degree=3)",
}


def test_documented_and_tested_formulas_pass_the_grammar():
    formulas = [f for f in _documented_formulas() if "..." not in f and ", ML" not in f]
    assert len(formulas) > 100
    refused = set()
    for text in formulas:
        try:
            validate_formula(text)
        except FormulaError:
            refused.add(text)
    assert refused == _REFUSED_ON_PURPOSE


def test_products_that_expand_beyond_the_documented_terms_are_refused():
    """A product of n factors expands to 2**n - 1 terms: 20 factors took 16 s in
    formulaic, 30 would take hours. Ten factors (1,023 terms) are read, eleven refused
    at the operator, before anything expands; so are sums and powers that expand alike."""
    ten = "y ~ " + "*".join(f"x{i}" for i in range(10))
    parse_formula(ten)
    for text, op in [
        (ten + "*x10", "*"),
        ("y ~ " + "*".join(f"x{i}" for i in range(30)), "*"),
        ("y ~ (" + "+".join(f"x{i}" for i in range(40)) + ")**3", "**"),
        (
            "y ~ ("
            + "+".join(f"x{i}" for i in range(40))
            + "):("
            + "+".join(f"z{i}" for i in range(40))
            + ")",
            ":",
        ),
    ]:
        with pytest.raises(FormulaError, match="expand to more than 1024 terms") as exc:
            parse_formula(text)
        formula, caret = str(exc.value).splitlines()[-2:]
        at = caret.index("^")
        assert formula[at : at + len(op)] == op  # the caret under the operator
    parse_formula("y ~ (a + b + c + d)**3 + e/f + (1 + a*b | g)")
