"""Pure-torch RL post-training algorithm math, as composable stages behind one registry.

    algo = algorithms.build({"preset": "dapo+forking", "regularizer": {"name": "kl", "coef": 0.01}})
    batch, metrics = algo.prepare(batch)          # driver part: advantages, weights, selection, state
    loss, loss_metrics = algo.loss(logp, batch)   # learner part: the pure loss

The trainer builds the two parts apart: `build_driver` in the driver, `build_loss` in each learner.

See DESIGN.md ("The common update step", "Functional API") and ALGORITHMS.md for the math and sources.
"""

from algorithms.algorithm import (Algorithm, DriverAlgorithm, PolicyLoss, build, build_driver, build_loss, check,
                                  reduce_metrics)
from algorithms.batch import BatchField, Field, RolloutBatch, StageField, field_named
from algorithms.core import (AGG_MODES, aggregate, aggregation_weights, clipped_surrogate, kl_penalty,
                             masked_mean, truncated_is_weights)
from algorithms.presets import PRESETS, resolve_spec
from algorithms.registry import REGISTRY, STAGE_KINDS, ConfigError, register
from algorithms.stages.base import Max, StepPlan

__all__ = ["AGG_MODES", "Algorithm", "BatchField", "ConfigError", "DriverAlgorithm", "Field", "Max", "PRESETS",
           "PolicyLoss", "REGISTRY", "RolloutBatch", "STAGE_KINDS", "StageField", "StepPlan", "aggregate",
           "aggregation_weights", "build", "build_driver", "build_loss", "check", "clipped_surrogate", "field_named",
           "kl_penalty", "masked_mean", "reduce_metrics", "register", "resolve_spec", "truncated_is_weights"]
