"""1,000,000 rows: time and peak memory of one ``impute()`` call (m = 5, 10 iterations).

A script, not a test. The experiment-2 design (two incomplete variables with ``cmean()``
terms; ``classroom(2, n_classes=N // 20, class_size=20, rng=1)``) at ``--rows`` rows,
imputed with ``df.mi.impute(IMPUTATION_FORMULAS[2], m=5, iterations=10, rng=1)`` in a
fresh process after ``import mlimpute`` and one small warm-up call (which loads the
modules the first call imports lazily: scipy, formulaic, xarray). Reports CPU seconds
(``time.process_time``; set ``OPENBLAS_NUM_THREADS=1``), wall seconds, the peak
resident memory during the call (the high-water mark ``VmHWM``, reset just before the
call where Linux allows it: making the data can take more than the call, and
``ru_maxrss`` keeps the process's peak since it began) and what it is measured against: the
data frame's size plus the imputed cells (m x missing cells x 8 bytes), and the
resident memory before the call (the interpreter, the libraries and the data).
With ``--traced`` it then repeats the call under ``tracemalloc`` and reports the traced
peak (the bytes Python and numpy allocate during the call, without the allocator's
slack that the resident figure includes) against the same reference.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_million.py --rows 1000000 --traced
"""

from __future__ import annotations

import argparse
import time
import warnings

from bench_suite import peak_rss_mib


def _rss_now() -> float:
    """Current resident memory in MB (Linux ``/proc/self/statm``)."""
    import os

    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> bool:
    """Reset the process's resident high-water mark (Linux: ``/proc/self/clear_refs``),
    so that the peak read after the call is the call's own, not an earlier one (making
    the data can take more memory than the call). False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--traced", action="store_true", help="also the tracemalloc peak")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import mlimpute  # noqa: F401  (registers the accessor)
    from mlimpute._heap import release_free_memory
    from mlimpute.datasets import IMPUTATION_FORMULAS, classroom

    small = classroom(2, rng=1).incomplete
    small.mi.impute(IMPUTATION_FORMULAS[2], m=2, iterations=2, rng=1)  # lazy imports
    df = classroom(2, n_classes=args.rows // 20, class_size=20, rng=1).incomplete
    data_mb = df.memory_usage(deep=True).sum() / 2**20
    cells = int(df.isna().sum().sum())
    imputed_mb = args.m * cells * 8 / 2**20
    peak_before = peak_rss_mib()
    # free pages the process holds already are given back first (glibc): otherwise the
    # call's first allocations reuse them unseen, and the growth depends on what ran before
    release_free_memory(len(df))
    reset = _reset_peak()
    before = _rss_now()
    c0, w0 = time.process_time(), time.perf_counter()
    imp = df.mi.impute(IMPUTATION_FORMULAS[2], m=args.m, iterations=args.iterations, rng=1)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    peak = peak_rss_mib()
    assert imp.m == args.m
    print(f"rows {len(df):,}, m = {args.m}, {args.iterations} iterations")
    print(f"cpu {cpu:.2f} s, wall {wall:.2f} s")
    print(f"data frame {data_mb:.1f} MB, imputed cells {cells:,} x {args.m} = {imputed_mb:.1f} MB")
    print(f"resident before the call {before:.1f} MB (peak so far {peak_before:.1f} MB)")
    if not reset:
        print("(the peak could not be reset: it may be an earlier one, above the call's)")
    print(f"peak resident {peak:.1f} MB; growth during the call {peak - before:.1f} MB")
    print(f"growth / (data + imputed) = {(peak - before) / (data_mb + imputed_mb):.2f}")
    if args.traced:
        import tracemalloc

        del imp
        tracemalloc.start()
        df.mi.impute(IMPUTATION_FORMULAS[2], m=args.m, iterations=args.iterations, rng=1)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        ratio = traced / (data_mb + imputed_mb)
        print(f"traced peak during the call {traced:.1f} MB = {ratio:.2f} x (data + imputed)")


if __name__ == "__main__":
    main()
