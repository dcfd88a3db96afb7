"""The latent-variable and matching models with several random-effect terms.

The multilevel probit (``2l.bin``), ordered probit (``2l.ordinal``), multinomial probit
(``2l.nominal``) and predictive mean matching (``2l.pmm``) models run the normal model's
Gibbs step as their core (:func:`~mlimpute.models._latent.linear_core`, the ``core`` of
:class:`~mlimpute.models.pmm.MultilevelPMM`); with several grouping factors that core is
:class:`~mlimpute.models.ml_multi.MultiTermNorm`, so these classes differ from the
two-level ones only in accepting data with further random-effect terms
(``multi_term = True``). Their random effects (``random_effects``) are the primary
term's.
"""

from __future__ import annotations

from mlimpute.models.binary import MultilevelProbit
from mlimpute.models.ml_multi import MultiTermNorm
from mlimpute.models.nominal import MultilevelMultinomialProbit
from mlimpute.models.ordinal import MultilevelOrderedProbit
from mlimpute.models.pmm import MultilevelPMM
from mlimpute.models.registry import register_multi_term

__all__ = [
    "MultiTermProbit",
    "MultiTermOrderedProbit",
    "MultiTermMultinomialProbit",
    "MultiTermPMM",
]


@register_multi_term("2l.bin")
class MultiTermProbit(MultilevelProbit):
    """Multilevel probit for a binary variable with several random-effect terms."""

    multi_term = True


@register_multi_term("2l.ordinal")
class MultiTermOrderedProbit(MultilevelOrderedProbit):
    """Multilevel ordered probit with several random-effect terms."""

    multi_term = True


@register_multi_term("2l.nominal")
class MultiTermMultinomialProbit(MultilevelMultinomialProbit):
    """Multilevel multinomial probit with several random-effect terms."""

    multi_term = True


@register_multi_term("2l.pmm")
class MultiTermPMM(MultilevelPMM):
    """Predictive mean matching on the normal model with several random-effect terms."""

    multi_term = True
    core_cls = MultiTermNorm
