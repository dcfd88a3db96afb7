"""The multilevel normal model's Gibbs step in one operation order, in numpy.

The compiled kernels (:mod:`mlimpute.models.kernels`) and this package compute the same
numbers bit for bit: every sum runs in one fixed order (within a cluster, row after
row; a dot product over a whole column or over the clusters, four running sums; other
sums over clusters, one after the other), the small matrices are factorised and solved
entry by entry, and the logarithms and exponentials of the Metropolis-Hastings step are
one formula written out in both (:mod:`~mlimpute.models.ordered.elementary`). Each
function here takes the arguments of the kernel of the same name and gives its
results; numpy computes them vectorised over chains, rows and clusters.
"""
