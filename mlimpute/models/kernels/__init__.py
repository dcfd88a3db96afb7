"""The compiled (numba) kernels of :class:`~mlimpute.models.ml_norm.MultilevelNorm`'s
Gibbs step; :mod:`mlimpute.models.ml_norm_compiled` calls them (or their numpy twins)
on the data they serve, and :mod:`mlimpute._numba` says which of the two runs.

Importing any module of this package imports numba, except this file and
:mod:`~mlimpute.models.kernels.constants` (which the numpy twins read too).
The kernels run steps (0)-(4) of
:meth:`MultilevelNorm.gibbs <mlimpute.models.ml_norm.MultilevelNorm.gibbs>` and
:meth:`MultilevelNorm.draw_missing <mlimpute.models.ml_norm.MultilevelNorm.draw_missing>`
with the default half-t prior, one residual variance and a random part that the
imputations do not change, for C chains in one call: a loop over the chains inside the
kernel, each drawing from its own ``numpy.random.Generator`` (numba draws numpy's own
streams) in the order the numpy step draws. The collapsed Metropolis-Hastings proposals
(step 0) are compiled for a correlated 2x2 random part.

The arithmetic is that of their numpy twins (:mod:`mlimpute.models.ordered`), operation
by operation, with the same numbers bit for bit, so which of the two runs changes the
speed only (:mod:`mlimpute._numba`). Every sum over rows and clusters runs in one fixed
order (within a cluster, row after row; over the rows of a whole column, four running
sums; over clusters, cluster after cluster), the small inverses and Cholesky factors are
written out (no BLAS or LAPACK), and the MH target sums its log-determinants by
``_sum_log`` (mantissas multiplied in groups of 64, binary exponents added); for a random
intercept (Z a column of ones) the changing design's sums and α's sums take the
per-cluster and column-by-column forms of
:func:`~mlimpute.models.kernels.sums.intercept_sums` and
:func:`~mlimpute.models.kernels.step.step`, the residual sum of squares comes from the
sums already at hand (``y'y - 2β'X'y + β'X'Xβ - 2Σ b_j r_j + Σ n_j b_j²``, r_j the
cluster's sum of y - Xβ; where it is below a thousandth of its terms, which would
cancel, from a pass over the rows), the products of the clusters' whitened sums that
make β's precision run as dot products over the clusters, and the b draws multiply by
reciprocals (``tests/models/ordered/``, ``tests/models/test_ml_norm_compiled.py``: the
kernels against their twins, whole runs included). Against
:meth:`MultilevelNorm.gibbs <mlimpute.models.ml_norm.MultilevelNorm.gibbs>`, the step of
the paths these kernels do not cover, which sums in numpy's order (its reductions, BLAS
and LAPACK), the numbers agree to round-off only. The sampler's design refresh and the
placement of the draws (:mod:`~mlimpute.models.kernels.refresh`) are compiled here too
(numpy's numbers bit for bit), so that :func:`~mlimpute.models.kernels.draws.draw_place`
can draw, place and trace a visit's missing values in one call.

The modules, one idea each:

* :mod:`~mlimpute.models.kernels.options`: how every kernel is compiled;
* :mod:`~mlimpute.models.kernels.linalg`: small dense linear algebra (Cholesky factors,
  triangular solves, SPD solves and inverses, the normal and inverse-Wishart draws);
* :mod:`~mlimpute.models.kernels.sums`: the design's sums and the dot products they use;
* :mod:`~mlimpute.models.kernels.elementary`: the logarithm and exponential written out
  (their constants in :mod:`~mlimpute.models.kernels.constants`);
* :mod:`~mlimpute.models.kernels.mh`: step (0), the collapsed MH on a 2x2 Ψ;
* :mod:`~mlimpute.models.kernels.step`: one Gibbs step of C chains;
* :mod:`~mlimpute.models.kernels.draws`: the missing values' draws (and placement);
* :mod:`~mlimpute.models.kernels.fused`: the step with its sums, and with the draws;
* :mod:`~mlimpute.models.kernels.pairwise`: numpy's pairwise sums and cluster means;
* :mod:`~mlimpute.models.kernels.refresh`: the design refresh and the draws' placement.

Compiled at first use and cached on disk (``cache=True``; about 15 s on one core, then
about 1 s a process to import numba and load the cache). numba keeps one cache index per
function, stamped with the state of the function's own source file (numba's
``numba/core/caching.py``: ``_SourceFileBackedLocatorMixin.get_source_stamp``, the
file's modification time and size in numba 0.60, a hash of its contents in 0.68.1),
and keys each compiled version by the function's own bytecode and the machine; a kernel
that calls a kernel of another module is compiled with the callee inside it, but a change
of the callee's module alone does not invalidate the caller's cache (numba's
documentation lists this among the cache's limitations). So every module here carries
the line ``SOURCES = "..."``, the same in each: the SHA-256 of the sources of all the
modules of this package, each with that line blanked. Any edit of any kernel module
changes the hash, which is rewritten in every module, so every module's file changes
and every cached kernel is compiled again. ``tests/models/kernels/test_sources.py``
fails while a line is stale; ``python tests/models/kernels/test_sources.py --update``
rewrites them.
"""

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"
