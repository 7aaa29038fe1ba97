"""The critic-based advantage: GAE over per-token rewards (algorithms/ppo.py), for the `ppo` preset."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch
from algorithms.ppo import RunningMoments, explained_variance, gae, kl_shaped_token_rewards, whiten
from algorithms.registry import meta, register
from algorithms.stages.base import AdvantageEstimator, adv_metrics, need


@register("advantage", "gae")
class GAEAdvantage(AdvantageEstimator):
    """A_t by GAE(gamma, lambda) from the critic's `values`; writes `returns` = A_t + V_t for the
    critic's update. `kl_coef` > 0 puts the KL to the reference into the reward, per token
    (InstructGPT); the KL in the loss is the `kl` regulariser instead. `whiten`: advantages
    standardised over the batch's response tokens (what PPO implementations do by default).
    `normalize_reward`: the outcome reward standardised by its running mean and std over the run
    (state kept in checkpoints), before the KL is added."""

    @dataclass
    class Params:
        gamma: float = meta(1.0, min=0.0, max=1.0)
        lam: float = meta(0.95, min=0.0, max=1.0)
        kl_coef: float = meta(0.0, min=0.0)
        whiten: bool = True
        normalize_reward: bool = False

    def __init__(self, params) -> None:
        super().__init__(params)
        self.reward_moments = RunningMoments()

    @property
    def reads(self) -> frozenset:
        kl = {F.OLD_LOGP, F.REF_LOGP} if self.params.kl_coef > 0 else set()
        return frozenset({F.REWARDS, F.RESPONSE_MASK, F.VALUES, F.TOKEN_REWARDS} | kl)

    @property
    def writes(self) -> frozenset:
        return frozenset({F.ADVANTAGES, F.RETURNS})

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        p, mask = self.params, batch.response_mask
        values = need(batch.values, "values (a critic: the ppo preset starts one)", "advantage gae")
        outcome = batch.rewards
        if p.normalize_reward:
            self.reward_moments.update(outcome)
            outcome = self.reward_moments.normalize(outcome)
        rewards = kl_shaped_token_rewards(outcome, mask, batch.old_logp, batch.ref_logp, p.kl_coef,
                                          batch.token_rewards)
        adv, returns = gae(rewards, values, mask, p.gamma, p.lam)
        batch.returns = returns
        metrics = {"critic/values_mean": float((values * mask).sum() / mask.sum().clamp(min=1)),
                   "critic/returns_mean": float((returns * mask).sum() / mask.sum().clamp(min=1)),
                   "critic/explained_variance": explained_variance(values, returns, mask)}
        if p.kl_coef > 0:
            kl = (batch.old_logp - batch.ref_logp) * mask
            metrics["critic/kl_in_reward"] = float(kl.sum() / mask.sum().clamp(min=1))
        if p.normalize_reward:
            metrics["critic/reward_running_mean"] = self.reward_moments.mean
            metrics["critic/reward_running_std"] = self.reward_moments.std
        if p.whiten:
            adv = whiten(adv, mask)
        return adv, {**metrics, **adv_metrics(adv, mask)}

    def state_dict(self) -> dict:
        return self.reward_moments.state_dict() if self.params.normalize_reward else {}

    def load_state_dict(self, d: dict) -> None:
        if d:
            self.reward_moments.load_state_dict(d)
