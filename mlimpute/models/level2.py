"""Level-2 (cluster) variables: the single-level models fitted on one row per cluster.

mice's ``2lonly.norm`` / ``2lonly.pmm`` and Jacobusse's (2005) last experiment: a variable that is
constant within clusters (teacher skill) is imputed from a data set with one row per
cluster, whose predictors are other level-2 variables, cluster means of level-1 variables
(``cmean(x)``, recomputed from the current imputations at every visit) and, where the
formula asks, the current random effects of a level-1 variable's model (``ranef(x)``). The
engine builds those cluster rows and writes the imputed value to every row of the cluster;
the models themselves are the single-level ones.
"""

from __future__ import annotations

from mlimpute.models.binary import Probit
from mlimpute.models.nominal import MultinomialProbit
from mlimpute.models.norm import Norm
from mlimpute.models.ordinal import OrderedProbit
from mlimpute.models.pmm import PMM
from mlimpute.models.registry import register

__all__ = ["Level2Norm", "Level2PMM", "Level2Probit", "Level2Ordinal", "Level2Nominal"]


@register(
    "2lonly.norm",
    multilevel=False,
    level=2,
    kinds=("numeric",),
    default_for=[("numeric", 2, False)],
)
class Level2Norm(Norm):
    """Bayesian linear regression on cluster rows (mice ``2lonly.norm``)."""


@register(
    "2lonly.pmm",
    multilevel=False,
    level=2,
    kinds=("numeric", "binary"),
    default_for=[("numeric", 2, False, "codes")],
)
class Level2PMM(PMM):
    """Predictive mean matching on cluster rows (mice ``2lonly.pmm``)."""


@register(
    "2lonly.bin", multilevel=False, level=2, kinds=("binary",), default_for=[("binary", 2, False)]
)
class Level2Probit(Probit):
    """Probit on cluster rows for a binary level-2 variable."""


@register(
    "2lonly.ordinal",
    multilevel=False,
    level=2,
    kinds=("ordinal", "binary"),
    default_for=[("ordinal", 2, False)],
)
class Level2Ordinal(OrderedProbit):
    """Ordered probit on cluster rows for an ordered level-2 variable."""


@register(
    "2lonly.nominal",
    multilevel=False,
    level=2,
    kinds=("nominal", "binary"),
    default_for=[("nominal", 2, False)],
)
class Level2Nominal(MultinomialProbit):
    """Multinomial probit on cluster rows for an unordered level-2 variable."""
