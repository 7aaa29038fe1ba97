"""Pure-torch RL post-training algorithm math, as composable stages behind one registry.

    algo = algorithms.build({"preset": "dapo+forking", "regularizer": {"name": "kl", "coef": 0.01}})

See DESIGN.md ("The common update step", "Functional API") and ALGORITHMS.md for the math and sources.
"""

from algorithms.algorithm import Algorithm, build, reduce_metrics
from algorithms.batch import RolloutBatch
from algorithms.core import (AGG_MODES, aggregate, aggregation_weights, clipped_surrogate, kl_penalty,
                             masked_mean, truncated_is_weights)
from algorithms.presets import PRESETS, resolve_spec
from algorithms.registry import REGISTRY, STAGE_KINDS, ConfigError, register

__all__ = ["AGG_MODES", "Algorithm", "ConfigError", "PRESETS", "REGISTRY", "RolloutBatch", "STAGE_KINDS",
           "aggregate", "aggregation_weights", "build", "clipped_surrogate", "kl_penalty", "masked_mean",
           "reduce_metrics", "register", "resolve_spec", "truncated_is_weights"]
