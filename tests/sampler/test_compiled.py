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


def test_continuations_keep_the_record_and_say_what_ran_the_other_way(monkeypatch, tmp_path):
    pytest.importorskip("numba")
    import warnings

    import mlimpute
    from mlimpute.datasets import classroom
    from mlimpute.errors import MlimputeWarning
    from mlimpute.impute import impute
    from mlimpute.sampler.compiled import COMPILED, SWITCHED

    df = classroom(1, rng=1).incomplete
    f = {"grade": "~ skill + (1 | class)"}
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    on = impute(df, f, m=2, iterations=3, rng=1)
    on.to_netcdf(tmp_path / "on.nc")
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    opened = mlimpute.open(tmp_path / "on.nc")
    with pytest.warns(MlimputeWarning, match="MLIMPUTE_NUMBA=1 to continue"):
        it = opened.iterate(2)
    off = f"{SWITCHED}off: chains 1–2, iterations 4–5 ran with the numpy step (MLIMPUTE_NUMBA=0)"
    assert [e for e in it.events if e.startswith((COMPILED, SWITCHED))] == [
        COMPILED + "grade",
        off,
    ]
    with pytest.warns(MlimputeWarning, match="made with the compiled Gibbs step switched on"):
        it2 = it.iterate(1)  # still made with the compiled step: still warned
    assert it2.events[-1].startswith(f"{SWITCHED}off: chains 1–2, iteration 6 ran")
    assert it2.events[:2] == [COMPILED + "grade", off]
    it2.to_netcdf(tmp_path / "it2.nc")
    assert mlimpute.open(tmp_path / "it2.nc").events[:3] == it2.events[:3]
    with pytest.warns(MlimputeWarning, match="switched on"):
        ex = on.extend(1)
    assert ex.events[:2] == [
        COMPILED + "grade",
        f"{SWITCHED}off: chain 3, iterations 1–3 ran with the numpy step (MLIMPUTE_NUMBA=0)",
    ]
    # made with numpy, continued compiled: recorded, and the numpy switch is the one kept
    made_off = impute(df, f, m=2, iterations=3, rng=1)
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    with pytest.warns(MlimputeWarning, match="MLIMPUTE_NUMBA=0 to continue"):
        later = made_off.iterate(1)
    assert later.events[0] == f"{SWITCHED}on: chains 1–2, iteration 4 ran with the {COMPILED}grade"
    with pytest.warns(MlimputeWarning, match="MLIMPUTE_NUMBA=0 to continue"):
        later.extend(1)
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MlimputeWarning)  # the switch it was made with
        back = later.iterate(1)
    assert back.events[0] == later.events[0]
