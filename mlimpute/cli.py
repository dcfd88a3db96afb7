"""The ``mlimpute`` command line.

Commands::

    mlimpute demo [--out DIR]                  impute the classroom example, pool an analysis
    mlimpute run spec.toml [--out DIR]         run a specification file
    mlimpute init data.csv --cluster class     print a default specification to edit
    mlimpute init data.csv --cluster school,class   the same, three levels
    mlimpute init data.csv --model "y ~ x + (1 + x | g)"   the same, model-based
    mlimpute describe data.csv --cluster class descriptives per variable
    mlimpute pattern data.csv                  the missing-data pattern

User errors (missing file, bad TOML, unknown column, bad formula, a file that exists...)
print one line ``mlimpute: error: ...`` (a formula's error adds the formula with a caret
under the token at fault) and exit with status 2; ``--verbose`` shows the traceback. No
command replaces a file of the user's without ``--force``, and none ever replaces the data
file.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mlimpute.errors import MlimputeError, MlimputeWarning

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["main"]

_USER_ERRORS = (
    MlimputeError,
    OSError,  # a missing file, a directory, no permission, a full disk, a name too long...
    tomllib.TOMLDecodeError,
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
)


def _err(*args) -> None:
    print(*args, file=sys.stderr)


@contextmanager
def _warnings_as_lines(verbose: bool) -> Iterator[None]:
    """Show mlimpute warnings as ``mlimpute: warning: ...`` lines; others only if verbose."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = str(w.message)
                if text in seen:
                    continue
                seen.add(text)
                if issubclass(w.category, MlimputeWarning):
                    _err(f"mlimpute: warning: {text}")
                elif verbose:
                    _err(f"mlimpute: {w.category.__name__}: {text}")


def _written(paths: list[Path]) -> list[str]:
    """``wrote ...`` lines; a run of files in one directory with one suffix on one line."""
    if len(paths) <= 3:
        return [f"wrote {p}" for p in paths]
    lines, i = [], 0
    while i < len(paths):
        j = i
        while j + 1 < len(paths) and _shape(paths[j + 1]) == _shape(paths[i]):
            j += 1
        if j - i >= 2:
            lines.append(f"wrote {paths[i]} ... {paths[j].name} ({j - i + 1} files)")
        else:
            lines += [f"wrote {p}" for p in paths[i : j + 1]]
        i = j + 1
    return lines


def _shape(p: Path) -> tuple[Path, str]:
    return p.parent, re.sub(r"\d+", "#", p.name)


def _print_result(result, log: Callable[[str], None] = print) -> None:
    if result.pooled is None:
        return
    log(f"\n{result.pooled}")
    for hypothesis, t in result.tests.items():
        log(
            f"Test {hypothesis!r} ({t.method}): F = {t.statistic:.3f} on {t.df1:g} and "
            f"{t.df2:.1f} df, p = {t.p:.4g}, riv = {t.riv:.3f}"
        )


# ------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from mlimpute.datasets import classroom
    from mlimpute.specfile import AnalysisSpec, OutputSpec, StudySpec, run

    data = classroom(1, rng=args.seed)
    df = data.incomplete
    print("mlimpute demo: the classroom example of Jacobusse (2005), experiment 1")
    print(
        f"  {df['class'].nunique()} classes, {len(df)} children; "
        f"{df['grade'].isna().mean():.0%} of 'grade' missing completely at random\n"
    )
    study = StudySpec(
        formulas=data.imputation,
        m=args.m,
        iterations=args.iterations,
        seed=args.seed,
        analysis=AnalysisSpec(data.formula),
        version=_version(),
    )
    out = None
    if args.out is not None:
        out = Path(args.out)
        _check_demo_out(out, args.m, args.force)  # before anything is written
        out.mkdir(parents=True, exist_ok=True)
        study = replace(
            study,
            data="classroom.csv",
            base_dir=out,
            output=OutputSpec("imputations.nc", "completed_{i}.csv", "pooled.csv"),
        )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a demo: the R-hat of short chains, MixedLM notes
        result = run(study, df)
    if out is not None:  # the data and the specification once the run has succeeded
        df.to_csv(out / "classroom.csv", index=False)
        study.write(out / "spec.toml")
    imp = result.imputed
    print(f"{imp}\n  ({time.perf_counter() - t0:.2f} s, imputation and pooled analysis)\n")
    print("First imputed cells of 'grade' (rows = children, columns = imputations):")
    print(imp.imputed("grade").iloc[:5, :8].round(2).to_string())
    _print_result(result)
    print("\nTrue values:", ", ".join(f"{k} = {v:g}" for k, v in data.truth.items()))
    if args.out is None:
        print(
            "\nNothing written; `mlimpute demo --out DIR` saves the data, the specification "
            "and the results."
        )
    else:
        print(
            f"\nWrote {args.out}/: classroom.csv, spec.toml, imputations.nc, "
            f"completed_1..{imp.m}.csv, pooled.csv. "
            f"`mlimpute run {Path(args.out) / 'spec.toml'}` repeats the run."
        )
    return 0


def _demo_files(m: int) -> list[str]:
    """The files ``mlimpute demo --out DIR`` writes into DIR."""
    return [
        "classroom.csv",
        "spec.toml",
        "imputations.nc",
        *(f"completed_{i}.csv" for i in range(1, m + 1)),
        "pooled.csv",
    ]


def _check_demo_out(out: Path, m: int, force: bool) -> None:
    """Refuse ``--out DIR`` if DIR is not a directory, or if a file the demo writes exists
    there (with ``--force``: if one is a directory or a symbolic link)."""
    from mlimpute.errors import SpecificationError

    if out.exists() and not out.is_dir():
        raise SpecificationError(f"--out: {str(out)!r} exists and is not a directory")
    if not out.is_dir():
        return
    paths = [out / name for name in _demo_files(m)]
    found = [p for p in paths if p.exists() or p.is_symlink()]
    if not found:
        return
    if not force:
        names = [p.name for p in found]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        raise SpecificationError(
            f"--out: {str(out)!r} already holds {shown}; the demo replaces no file: choose "
            "another directory, or pass --force to replace them"
        )
    for p in found:
        if p.is_symlink() or p.is_dir():
            what = "a symbolic link" if p.is_symlink() else "a directory"
            raise SpecificationError(
                f"--out: {str(p)!r} is {what}; --force replaces only files (remove it yourself)"
            )


def _run(args: argparse.Namespace) -> int:
    from mlimpute.specfile import read_spec, run

    study = read_spec(args.spec)
    log = (lambda _: None) if args.quiet else print
    t0 = time.perf_counter()
    with _warnings_as_lines(args.verbose):
        result = run(
            study,
            progress=not args.no_progress and sys.stderr.isatty(),
            log=log,
            out_dir=args.out,
            allow_outside=args.allow_outside,
        )
    for line in _written(result.written):
        log(line)
    _print_result(result, print)
    log(f"({time.perf_counter() - t0:.2f} s)")
    return 0


def _read(path: str, columns: list[str] | None = None) -> pd.DataFrame:
    from mlimpute.errors import SpecificationError
    from mlimpute.io.flat import read_data  # not .io: no xarray or file back-ends for reading

    df = read_data(path)
    for c in columns or []:
        if c is not None and c not in df.columns:
            raise SpecificationError(
                f"column {c!r} is not in {path!r}; its columns are {list(df.columns)}"
            )
    return df


def _levels(value: str | None) -> str | list[str] | None:
    """``--cluster``: one column, or the nested levels outermost first, comma-separated
    (``school,class``)."""
    if value is None:
        return None
    levels = [c.strip() for c in value.split(",") if c.strip()]
    if not levels:
        from mlimpute.errors import SpecificationError

        raise SpecificationError(f"--cluster names no column: {value!r}")
    return levels[0] if len(levels) == 1 else levels


def _describe(args: argparse.Namespace) -> int:
    cluster = _levels(args.cluster)
    df = _read(args.data, [cluster] if isinstance(cluster, str) else cluster)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(df.mi.describe(cluster=cluster).to_string())
    return 0


def _pattern(args: argparse.Namespace) -> int:
    df = _read(args.data)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(repr(df.mi.pattern()))
    return 0


def _init(args: argparse.Namespace) -> int:
    from mlimpute.specfile import init_spec

    auxiliary = [a.strip() for arg in args.auxiliary or [] for a in arg.split(",") if a.strip()]
    cluster = _levels(args.cluster)
    levels = [cluster] if isinstance(cluster, str) else cluster or []
    if args.output is not None:
        _check_init_output(Path(args.output), Path(args.data), args.force)
    df = _read(args.data, [*levels, *auxiliary])
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    data = Path(args.data)
    if args.output is not None and not data.is_absolute():
        data = Path(os.path.relpath(data.resolve(), Path(args.output).resolve().parent))
    text = init_spec(
        df,
        cluster=cluster,
        data=data.as_posix(),
        m=args.m,
        iterations=args.iterations,
        seed=seed,
        model=args.model,
        auxiliary=auxiliary or None,
        family=args.family,
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        with open(args.output, "w" if args.force else "x", encoding="utf-8") as f:
            f.write(text)  # "x": fails if the file appeared meanwhile
        outside = not data.is_absolute() and data.parts[:1] == ("..",)
        flag = " --allow-outside" if outside else ""
        what = "the model" if args.model else "the formulas"
        _err(f"wrote {args.output}: review {what}, then `mlimpute run {args.output}{flag}`")
        if outside:
            _err(
                "mlimpute: note: the data file is outside the specification's directory, "
                "which `mlimpute run` allows only with --allow-outside"
            )
    return 0


def _check_init_output(output: Path, data: Path, force: bool) -> None:
    """``init -o FILE``: never the data file (also through a link); an existing FILE only
    with ``--force``."""
    from mlimpute.errors import SpecificationError
    from mlimpute.specfile import same_file

    if same_file(output, data):
        raise SpecificationError(
            f"-o: {str(output)!r} is the data file; write the specification to another file"
        )
    if output.is_dir():
        raise SpecificationError(f"-o: {str(output)!r} is a directory; name a file")
    if (output.exists() or output.is_symlink()) and not force:
        raise SpecificationError(
            f"-o: {str(output)!r} exists; pass --force to replace it, or choose another name"
        )


def _version() -> str:
    from mlimpute._version import __version__

    return __version__


# ------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlimpute", description="Multilevel multiple imputation for Python."
    )
    p.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    p.add_argument("--version", action="version", version=f"mlimpute {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors and all warnings",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="impute the classroom example and pool an analysis",
        description="Impute the classroom example of Jacobusse (2005) "
        "(experiment 1: grade missing completely at random) with a "
        "random-intercept model and print the pooled analysis. Nothing is "
        "written unless --out is given.",
    )
    demo.add_argument("-m", type=int, default=20, help="number of imputations (default 20)")
    demo.add_argument("--iterations", type=int, default=20)
    demo.add_argument(
        "--seed",
        type=int,
        default=2005,
        help="random seed of the data and the chains (default 2005)",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="write the data, spec.toml, imputations.nc, completed_{i}.csv and "
        "pooled.csv into DIR (default: write nothing); refused if DIR already holds a "
        "file of these names, unless --force is given",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="with --out: replace files of the same names in DIR (files only: never a "
        "directory or a symbolic link, nor an imputation file that mlimpute did not write)",
    )
    demo.add_argument(
        "--no-save", dest="out", action="store_const", const=None, help=argparse.SUPPRESS
    )  # the default; kept for old scripts
    demo.set_defaults(func=_demo)

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a specification file (TOML)",
        description="Read the data, impute, write the imputation file and "
        "completed data, and pool the [analysis] if the file has one.",
    )
    run.add_argument("spec", help="the specification file, e.g. spec.toml")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the pooled table")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="write the outputs under DIR instead of the specification's "
        "directory (their paths must stay inside DIR)",
    )
    run.add_argument(
        "--allow-outside",
        action="store_true",
        help="allow data and output paths that lead outside their directory "
        "(refused by default: only for specification files you trust)",
    )
    run.set_defaults(func=_run)

    init = sub.add_parser(
        "init",
        parents=[common],
        help="print a default specification for a data file",
        description="Write a default specification to review: every "
        "incomplete numeric column imputed from all other columns; with --model, "
        "model-based imputation from the analysis model (a [model] table).",
    )
    init.add_argument("data", help="CSV, parquet, Stata or SPSS file")
    init.add_argument(
        "--cluster",
        help="the grouping column (e.g. class), or the nested levels outermost first, "
        "comma-separated (school,class): three-level defaults",
    )
    init.add_argument(
        "--model",
        metavar="FORMULA",
        help='the analysis model, e.g. "y ~ x + (1 + x | g)": impute from it '
        "(model-based imputation; the grouping column is the one in its random part)",
    )
    init.add_argument(
        "--family",
        choices=["poisson", "negative_binomial"],
        help="with --model: the analysis model's family for a count outcome",
    )
    init.add_argument(
        "--auxiliary",
        metavar="COLUMNS",
        action="append",
        help="with --model: columns that inform the imputations without entering the "
        "analysis (comma-separated, or the option repeated)",
    )
    init.add_argument("-m", type=int, default=20, help="number of imputations (default 20)")
    init.add_argument("--iterations", type=int, default=20)
    init.add_argument("--seed", type=int, help="root seed (default: a random one, written)")
    init.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE (data path made relative to it) instead of stdout; refused "
        "if FILE exists, unless --force is given, and always if FILE is the data file",
    )
    init.add_argument("--force", action="store_true", help="with -o: replace FILE if it exists")
    init.set_defaults(func=_init)

    desc = sub.add_parser("describe", parents=[common], help="descriptives per variable")
    desc.add_argument("data")
    desc.add_argument(
        "--cluster",
        help="the grouping column: ICCs and levels; or the nested levels outermost first "
        "(school,class): the level of every variable and the ICC per level",
    )
    desc.set_defaults(func=_describe)

    pat = sub.add_parser("pattern", parents=[common], help="the missing-data pattern")
    pat.add_argument("data")
    pat.set_defaults(func=_pattern)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlimpute`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `mlimpute pattern data.csv | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _USER_ERRORS as exc:
        if args.verbose:
            traceback.print_exc()
        if isinstance(exc, OSError) and exc.filename:
            msg = f"{exc.strerror}: {str(exc.filename)!r}"
        else:
            msg = str(exc)
        _err(f"mlimpute: error: {msg}")
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        _err("mlimpute: interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
