"""Conditional models, one module per family, registered by name.

The contract every model follows — :class:`ConditionalModel` (``check``, ``init``, ``step``,
``draw_missing``, ``param_names``, ``param_vector``, ``random_effects``), the data it sees
(:class:`ModelData`), the linear-core API the latent and matching models reuse
(:class:`LinearCore`) — is in :mod:`mlimpute.models.base`, the registry and the default
table in :mod:`mlimpute.models.registry`;
:func:`check_model` tests a registered model against it.

Examples
--------
>>> from mlimpute.models import default_for, get_model
>>> default_for("numeric", 1, True), get_model("2l.norm").kinds
('2l.norm', ('numeric',))
"""

from __future__ import annotations

from mlimpute.models.base import ConditionalModel, LinearCore, ModelBase, ModelData
from mlimpute.models.registry import (
    _REGISTRY,  # noqa: F401  (tests replace entries)
    DefaultSlot,
    ModelInfo,
    available_models,
    default_for,
    default_table,
    get_model,
    model_options,
    register,
    validate_options,
)
from mlimpute.models.testing import check_model

__all__ = [
    "ConditionalModel",
    "LinearCore",
    "ModelBase",
    "ModelData",
    "ModelInfo",
    "DefaultSlot",
    "register",
    "get_model",
    "available_models",
    "default_for",
    "default_table",
    "model_options",
    "validate_options",
    "check_model",
]

# the explicit registry: importing a family module registers its models
from mlimpute.models import binary as binary  # noqa: E402
from mlimpute.models import counts as counts  # noqa: E402
from mlimpute.models import level2 as level2  # noqa: E402
from mlimpute.models import logit as logit  # noqa: E402
from mlimpute.models import ml_multi as ml_multi  # noqa: E402
from mlimpute.models import ml_multi_models as ml_multi_models  # noqa: E402
from mlimpute.models import ml_norm as ml_norm  # noqa: E402
from mlimpute.models import ml_norm_het as ml_norm_het  # noqa: E402
from mlimpute.models import nominal as nominal  # noqa: E402
from mlimpute.models import norm as norm  # noqa: E402
from mlimpute.models import ordinal as ordinal  # noqa: E402
from mlimpute.models import pmm as pmm  # noqa: E402
from mlimpute.models import transforms as transforms  # noqa: E402  (after the normal models)
from mlimpute.models import zero_inflated as zero_inflated  # noqa: E402
