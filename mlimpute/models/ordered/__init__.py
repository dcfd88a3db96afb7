"""The multilevel normal model's Gibbs step in one operation order, in numpy.

The compiled kernels (:mod:`mlimpute.models.kernels`) and this package compute the same
numbers bit for bit: every sum runs in one fixed order (within a cluster, row after
row; over the rows of a whole column, four running sums; over clusters, cluster after
cluster), the small matrices are factorised and solved entry by entry, and the
logarithms and exponentials that enter a state are the C library's. Each function here
takes the arguments of the kernel of the same name and gives its results; numpy
computes them vectorised over rows and clusters.
"""
