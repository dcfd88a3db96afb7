"""Which runs used the compiled Gibbs step (mlimpute.sampler.compiled)."""

import pytest


def test_results_record_the_compiled_step_and_continuations_warn_when_switched(monkeypatch):
    pytest.importorskip("numba")
    import warnings

    import numpy as np

    from mlimpute.datasets import classroom
    from mlimpute.errors import MlimputeWarning
    from mlimpute.impute import impute
    from mlimpute.sampler.compiled import COMPILED

    df = classroom(1, rng=1).incomplete
    f = {"grade": "~ skill + (1 | class)"}
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    on = impute(df, f, m=2, iterations=3, rng=1)
    assert [e for e in on.events if e.startswith(COMPILED)] == [COMPILED + "grade"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MlimputeWarning)  # same switch: no warning
        longer = on.iterate(2)
    np.testing.assert_array_equal(
        longer.complete(1)["grade"], impute(df, f, m=2, iterations=5, rng=1).complete(1)["grade"]
    )
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    off = impute(df, f, m=2, iterations=3, rng=1)
    assert not any(e.startswith(COMPILED) for e in off.events)
    with pytest.warns(MlimputeWarning, match="MLIMPUTE_NUMBA=1 to continue"):
        on.iterate(1)
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    with pytest.warns(MlimputeWarning, match="MLIMPUTE_NUMBA=0 to continue"):
        off.extend(1)
