"""The ``mlimpute`` command line."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from .errors import MlimputeError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import warnings

    import mlimpute
    from mlimpute.datasets import classroom

    data = classroom(1, rng=args.seed)
    df = data.incomplete
    print("mlimpute demo: the seed's experiment 1 (Jacobusse, IMPS 2005)")
    print(f"  {df['class'].nunique()} classes, {len(df)} children; "
          f"{df['grade'].isna().mean():.0%} of 'grade' missing completely at random\n")
    t0 = time.perf_counter()
    imp = mlimpute.impute(df, data.imputation, m=args.m, iterations=args.iterations,
                          rng=args.seed)
    print(f"{imp}\n  ({time.perf_counter() - t0:.2f} s)\n")
    first = imp.imputed("grade").head(5).round(2)
    print("First imputed cells of 'grade' (rows = children, columns = imputations):")
    print(first.to_string(), "\n")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = imp.fit(data.formula)
    print(f"Pooled analysis {data.formula!r} ({time.perf_counter() - t0:.2f} s):")
    print(res)
    print("\nTrue values:", ", ".join(f"{k} = {v:g}" for k, v in data.truth.items()))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlimpute",
                                description="Multilevel multiple imputation for Python.")
    p.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="impute the seed's classroom data and pool an analysis")
    demo.add_argument("-m", type=int, default=20, help="number of imputations (default 20)")
    demo.add_argument("--iterations", type=int, default=20)
    demo.add_argument("--seed", type=int, default=2005)
    demo.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlimpute`` console script."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except MlimputeError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"mlimpute: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
