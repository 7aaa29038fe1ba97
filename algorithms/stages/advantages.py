"""Advantage estimators: rewards (and state) -> (N,T) advantages. Math lives in the algorithm modules."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.batch import BatchField as F
from algorithms.batch import RolloutBatch, StageField
from algorithms.core import masked_mean
from algorithms.dcpo import SmoothAdvantage
from algorithms.grpo import group_advantages, overlong_penalty, rloo_advantages, shaped_rewards
from algorithms.gtpo import entropy_filtered_advantages
from algorithms.igpo import IGPO_NORMS, broadcast_turns, turn_advantages, turn_rewards_from_tokens
from algorithms.noisy import forward_corrected_advantages, reinforce_advantages
from algorithms.nsr import NSR_MODES, sample_advantages
from algorithms.registry import meta, register
from algorithms.stages.base import AdvantageEstimator, adv_metrics, need, seq_to_tokens

#: GTPO's per-completion advantage before the entropy filter (its sign: positive / negative completion),
#: read by the gtpo token selector
SEQ_ADVANTAGES = StageField("seq_advantages", per_token=False, doc="(N,) GTPO's A = R - mean_g R before shaping")
#: PACS's correctness labels y = 1[reward > threshold], read by the pacs objective
LABELS = StageField("labels", per_token=False, doc="(N,) 0/1 correctness labels (PACS)")

_GROUP_READS = frozenset({F.REWARDS, F.GROUP_IDS, F.RESPONSE_MASK})
_ADV = frozenset({F.ADVANTAGES})


def _lengths(batch: RolloutBatch) -> torch.Tensor:
    return batch.response_mask.sum(-1)


@register("advantage", "group")
class GroupAdvantage(AdvantageEstimator):
    """GRPO / Dr.GRPO group advantage, with DAPO soft overlong shaping of the reward (off by default)."""

    reads, writes = _GROUP_READS, _ADV

    @dataclass
    class Params:
        scale: str = meta("group", choices=("group", "none"))
        eps: float = meta(1e-6, min=0.0)
        overlong_buffer_frac: float = meta(0.0, min=0.0, lt=1.0)   # DAPO: 4096/20480 = 0.2; 0 = off
        overlong_max_len: int = meta(0, min=0)       # L_max; 0 = the generation budget (rollout.max_new_tokens)
        overlong_factor: float = meta(1.0, min=0.0)

    def shaped_rewards(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        if p.overlong_buffer_frac <= 0:
            return batch.rewards, {}
        max_len = p.overlong_max_len or batch.response_budget()
        pen = overlong_penalty(_lengths(batch), max_len, p.overlong_buffer_frac * max_len, p.overlong_factor)
        return shaped_rewards(batch.rewards, pen), {
            "reward/overlong_penalty_mean": float(pen.mean()),
            "reward/overlong_penalty_frac": float((pen < 0).float().mean())}

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        rewards, metrics = self.shaped_rewards(batch)
        adv = seq_to_tokens(group_advantages(rewards, batch.group_ids, self.params.scale, self.params.eps),
                            batch.response_mask)
        return adv, {**metrics, **adv_metrics(adv, batch.response_mask)}


@register("advantage", "rloo")
class RLOOAdvantage(AdvantageEstimator):
    reads, writes = _GROUP_READS, _ADV

    @dataclass
    class Params:
        pass

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        adv = seq_to_tokens(rloo_advantages(batch.rewards, batch.group_ids), batch.response_mask)
        return adv, adv_metrics(adv, batch.response_mask)


@register("advantage", "dcpo")
class DCPOAdvantage(AdvantageEstimator):
    """DCPO smooth advantage standardisation; per-prompt state saved in checkpoints."""

    reads, writes = _GROUP_READS | {F.PROMPT_KEYS}, _ADV

    @dataclass
    class Params:
        pass

    def __init__(self, params) -> None:
        super().__init__(params)
        self.smooth = SmoothAdvantage()

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        seq = self.smooth(batch.rewards, batch.group_ids, batch.prompt_keys)
        adv = seq_to_tokens(seq, batch.response_mask)
        return adv, {"dcpo/nonzero_adv_frac": float((seq != 0).float().mean()),
                     "dcpo/tracked_prompts": float(len(self.smooth.stats)), **adv_metrics(adv, batch.response_mask)}

    def state_dict(self) -> dict:
        return self.smooth.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.smooth.load_state_dict(d)


@register("advantage", "gtpo")
class GTPOAdvantage(AdvantageEstimator):
    """A = R - mean_g R, then GTPO entropy filter with the completion's mean old-policy entropy.
    The unfiltered A goes to `seq_advantages` (its sign defines positive/negative completions)."""

    reads, writes = _GROUP_READS | {F.ENTROPY}, _ADV | {SEQ_ADVANTAGES}

    @dataclass
    class Params:
        threshold: float = meta(0.7, min=0.0)
        scale: float = meta(0.1, min=0.0)

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        ent = need(batch.entropy, "entropy", "advantage gtpo")
        raw = group_advantages(batch.rewards, batch.group_ids, scale="none")
        seq_h = masked_mean(ent, batch.response_mask, dim=-1)
        shaped = entropy_filtered_advantages(raw, seq_h.to(raw.dtype), self.params.threshold, self.params.scale)
        batch.put(SEQ_ADVANTAGES, raw)
        adv = seq_to_tokens(shaped, batch.response_mask)
        return adv, {"gtpo/filtered_frac": float((seq_h > self.params.threshold).float().mean()),
                     "gtpo/seq_entropy": float(seq_h.mean()), **adv_metrics(adv, batch.response_mask)}


@register("advantage", "nsr")
class NSRAdvantage(AdvantageEstimator):
    reads, writes = frozenset({F.REWARDS, F.RESPONSE_MASK}), _ADV

    @dataclass
    class Params:
        mode: str = meta("w-reinforce", choices=NSR_MODES)
        lam: float = meta(0.1, min=0.0)

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        seq, keep = sample_advantages(batch.rewards, self.params.mode, self.params.lam)
        adv = seq_to_tokens(seq, batch.response_mask)
        return adv, {"nsr/kept_frac": float(keep.float().mean()), **adv_metrics(adv, batch.response_mask)}


@register("advantage", "igpo")
class IGPOAdvantage(AdvantageEstimator):
    """Turn-level advantages (algorithms/igpo.py): information gain p_{k+1} - p_k for each non-final turn
    (`gt_probs`, from the runtime's teacher-forcing pass) plus any per-turn environment reward
    (`token_rewards`), the outcome on the final turn; normalised in the group, discounted back and
    broadcast over each turn's policy tokens with `turn_ids`. Single-turn rows (one turn) reduce to the
    outcome normalised in its group."""

    reads = _GROUP_READS | {F.TURN_IDS, F.TOKEN_REWARDS, F.GT_PROBS}
    writes = _ADV

    @dataclass
    class Params:
        gamma: float = meta(1.0, min=0.0, max=1.0)
        norm: str = meta("joint", choices=IGPO_NORMS)

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        p, turn_ids = self.params, batch.turn_ids
        n_turns = (turn_ids.max(1).values + 1).clamp(min=1)
        extra = turn_rewards_from_tokens(batch.token_rewards, turn_ids)
        turn_adv = turn_advantages(batch.gt_probs, batch.rewards, batch.group_ids, p.gamma, p.norm, n_turns, extra)
        adv = broadcast_turns(turn_adv, turn_ids, batch.response_mask)
        gt = batch.gt_probs.to(torch.float64)
        multi = n_turns > 1
        out = {"igpo/turns_mean": float(n_turns.float().mean()), **adv_metrics(adv, batch.response_mask)}
        if multi.any():
            ig = gt[multi, 1:] - gt[multi, :-1]
            ig = ig[~torch.isnan(ig)]
            last = gt[multi].gather(1, (n_turns[multi] - 1).unsqueeze(1)).squeeze(1)
            out.update({"igpo/info_gain_mean": float(ig.mean()) if ig.numel() else 0.0,
                        "igpo/gt_prob_first": float(gt[multi, 0].mean()), "igpo/gt_prob_last": float(last.mean())})
        return adv, out


@register("advantage", "pacs")
class PACSLabels(AdvantageEstimator):
    """PACS has no advantage: it writes labels y = 1[reward > threshold] to `labels` and sets the
    advantage tensor to zeros (the PACS objective does not read it)."""

    reads, writes = frozenset({F.REWARDS, F.RESPONSE_MASK}), _ADV | {LABELS}

    @dataclass
    class Params:
        threshold: float = 0.5

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        labels = (batch.rewards > self.params.threshold).to(torch.float32)
        batch.put(LABELS, labels)
        return torch.zeros_like(batch.response_mask, dtype=torch.float32), {"pacs/label_mean": float(labels.mean())}


@register("advantage", "reinforce")
class ReinforceAdvantage(AdvantageEstimator):
    """A = R, no baseline (so an affine reward correction such as the noisy-verifier backward one acts)."""

    reads, writes = frozenset({F.REWARDS, F.RESPONSE_MASK}), _ADV

    @dataclass
    class Params:
        pass

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        adv = seq_to_tokens(reinforce_advantages(batch.rewards), batch.response_mask)
        return adv, adv_metrics(adv, batch.response_mask)


@register("advantage", "noisy_forward")
class NoisyForwardAdvantage(AdvantageEstimator):
    """Forward noisy-verifier correction as per-sample score-function weights (algorithms/noisy.py)."""

    reads, writes = frozenset({F.REWARDS, F.RESPONSE_MASK}), _ADV

    @dataclass
    class Params:
        fn_rate: float = meta(0.0, min=0.0, lt=1.0)
        threshold: float = 0.5

    def compute(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        w = forward_corrected_advantages(batch.rewards, self.params.fn_rate, self.params.threshold)
        adv = seq_to_tokens(w, batch.response_mask)
        return adv, adv_metrics(adv, batch.response_mask)
