"""Write ``tests/data/ess_reference.npz``: bulk and tail ESS of the reference implementation.

The reference is arviz's ``ess(method="bulk")`` and ``ess(method="tail")`` (arviz 0.22.0,
the estimator of Vehtari et al. 2021 as Stan's ``ess_rfun`` computes it). arviz is not a
dependency of mlimpute: run this once in a separate environment, from the repository root::

    python -m venv /tmp/arviz_venv && /tmp/arviz_venv/bin/pip install "arviz<0.23" numpy
    /tmp/arviz_venv/bin/python tests/data/make_ess_reference.py

For every case the file holds the draws ``x_<case>`` (chains x draws) and the reference
``bulk_<case>`` and ``tail_<case>``; ``cases`` lists the case names and ``generated_by``
the versions used. Read by ``tests/diagnostics/test_kernels.py``.
"""

from pathlib import Path

import arviz as az
import numpy as np

rng = np.random.default_rng(20240611)


def ar1(chains: int, draws: int, phi: float) -> np.ndarray:
    """Stationary AR(1) chains with coefficient ``phi``."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains) / np.sqrt(1.0 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=chains)
    return x


CASES = {
    # short chains, as imputation runs keep them
    "ar08_10x20": ar1(10, 20, 0.8),
    "ar04_20x5": ar1(20, 5, 0.4),
    "iid_5x4": rng.normal(size=(5, 4)),
    "iid_3x7": rng.normal(size=(3, 7)),
    "ar03_5x10": ar1(5, 10, 0.3),
    "ar06_5x11": ar1(5, 11, 0.6),
    # longer chains
    "iid_4x100": rng.normal(size=(4, 100)),
    "ar09_4x101": ar1(4, 101, 0.9),
    "ar05_1x200": ar1(1, 200, 0.5),
    # antithetic chains: ESS above the number of draws, tau at its floor 1 / log10(MN)
    "antithetic_4x50": ar1(4, 50, -0.7),
    "antithetic_10x6": ar1(10, 6, -0.8),
    # chains that have not mixed
    "shifted_5x20": rng.normal(size=(5, 20)) + np.arange(5)[:, None],
    "trend_3x30": rng.normal(size=(3, 30)) + np.linspace(0.0, 4.0, 30),
    # heavy-tailed and discrete draws (ties)
    "cauchy_4x40": rng.standard_cauchy(size=(4, 40)),
    "poisson_5x16": rng.poisson(1.5, size=(5, 16)).astype(float),
    # a tail indicator that is constant: 95 % or more of the draws at the largest value
    "mostly_max_5x20": np.where(rng.random((5, 20)) < 0.03, 0.0, 1.0),
    "one_low_4x30": np.where(np.arange(120).reshape(4, 30) == 7, -1.0, 2.0),
}


def main() -> None:
    out: dict[str, np.ndarray] = {}
    for name, x in CASES.items():
        out[f"x_{name}"] = x
        out[f"bulk_{name}"] = np.asarray(float(az.ess(x, method="bulk")))
        out[f"tail_{name}"] = np.asarray(float(az.ess(x, method="tail")))
    out["cases"] = np.array(list(CASES))
    out["generated_by"] = np.array(f"arviz {az.__version__}, numpy {np.__version__}")
    path = Path(__file__).with_name("ess_reference.npz")
    np.savez_compressed(path, **out)
    for name in CASES:
        print(f"{name:>18}: bulk {out[f'bulk_{name}']:.6f}, tail {out[f'tail_{name}']:.6f}")


if __name__ == "__main__":
    main()
