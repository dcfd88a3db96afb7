"""The result's arrays hold the imputed values once: the chains' final states read them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mlimpute
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom


def _impute(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short runs: convergence warnings
        return mlimpute.impute(df, IMPUTATION_FORMULAS[2], m=3, iterations=2, rng=4, **kw)


@pytest.mark.parametrize("shuffle", [False, True])
def test_chain_states_read_the_results_arrays(shuffle):
    df = classroom(2, rng=2).incomplete
    if shuffle:
        df = df.iloc[np.random.default_rng(1).permutation(len(df))]
    imp = _impute(df)
    for name in imp.variables:
        arr = imp.dataset[name].values
        assert not arr.flags.writeable  # the chain states rely on it
        pos = imp.dataset[name][f"{name}:row"].to_numpy()
        order = np.argsort(df["class"].to_numpy()[pos], kind="stable")
        for k, chain in enumerate(imp.chains):
            cells = chain.imputed[name]  # sorted by cluster, as the sampler holds them
            np.testing.assert_array_equal(cells, arr[k][order])
            # rows already sorted by cluster: the state is the result's row itself
            assert np.shares_memory(cells, arr) == (not shuffle)
