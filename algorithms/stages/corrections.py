"""Corrections: per-token weights on the policy term for a mismatch between the distribution that
sampled the tokens and pi_old. They run in the learner's loss part (where pi_old is known even when
no separate old-log-prob pass ran).

- none.
- tis: truncated importance sampling w = min(pi_old / pi_engine, cap) (Yao et al. 2025, "Your Efficient
  RL Framework Secretly Brings You Off-Policy RL Training"; cap 2 there). Metrics: rollout/tis_weight_mean
  and rollout/tis_capped_frac over the real response tokens. pi_old is the learner's log-prob of the
  token under the weights of this step on every schedule (`old_logp_from_learner`): on a stale batch
  (async, replay, partial rollouts) the weight then corrects the lag and the engine-vs-learner gap
  together and the clipped ratio is taken against the current policy, the decoupled PPO objective
  (Hilton et al. 2021, "Batch size-invariance for policy optimization", arXiv 2110.00641; AReaL, Fu et al.
  2025, arXiv 2505.24298).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.core import truncated_is_weights
from algorithms.registry import meta, register
from algorithms.stages.base import Correction, Metrics, need, real_tokens, wmean


@register("correction", "none")
class NoCorrection(Correction):
    @dataclass
    class Params:
        pass


@register("correction", "tis")
class TruncatedIS(Correction):
    reads = frozenset({F.OLD_LOGP, F.SAMPLING_LOGP, F.LOSS_WEIGHTS})
    old_logp_from_learner = True

    @dataclass
    class Params:
        cap: float = meta(2.0, min=1.0)

    def weights(self, mb: RolloutBatch) -> tuple[torch.Tensor | None, Metrics]:
        old = need(mb.old_logp, "old_logp", "correction tis")
        behaviour = need(mb.sampling_logp, "sampling_logp (the engine's log-probs)", "correction tis")
        w = truncated_is_weights(old, behaviour, self.params.cap) * mb.response_mask
        real = real_tokens(mb)
        capped = (old - behaviour > math.log(self.params.cap)).to(real.dtype)
        return w, {**wmean("rollout/tis_weight_mean", w, real), **wmean("rollout/tis_capped_frac", capped, real)}
