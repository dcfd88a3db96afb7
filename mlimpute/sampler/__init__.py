"""The Gibbs sampler: design matrices built once (``design``), the chained visits of one
chain (``engine``) and the executors that run the m chains (``executors``).
"""
