"""IGPO — Information Gain-based Policy Optimization (Wang et al., arXiv 2510.14967, eqs. 4-8; updated code
debajoycs98/IGPO `compute_grpo_outcome_advantage` + `_compute_turn_level_advantage`).

Turn rewards: turn k < K-1 gets the information gain IG_k = p_{k+1} - p_k, where p_k is the (geometric-mean
token) probability of the ground truth teacher-forced after the history before turn k (p_0: prompt only;
p_{k+1}: after turn k and its observation), computed by the runtime on the learners; the final turn gets
the outcome reward. Per-turn environment rewards, when an environment gives them, are added. Normalisation within each group: "joint" over all valid turn rewards of the group
(x - mean) / (std + 1e-6) with std = sqrt(population var + 1e-8) (std = 1 when the group has <= 1 value),
or "separate" (IG rewards and outcomes normalised apart). Then A_k = rn_k + gamma * A_{k+1} backwards and
A_k is broadcast to every policy token of turn k (observation tokens are masked).
rltrain deviation: the code normalises the non-zero reward positions; we normalise every valid turn reward
(an exactly-zero information gain still counts). Variable turn counts: absent turns are NaN.
"""

from __future__ import annotations

import torch

from algorithms.core import group_inverse

IGPO_NORMS = ("joint", "separate")


def _normalise(values: torch.Tensor, valid: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Per-group (x - mean)/(std + 1e-6) over the valid entries of (N,K) values; invalid -> 0."""
    out = torch.zeros_like(values)
    inv, g = group_inverse(group_ids)
    for k in range(g):
        sel = (inv == k).unsqueeze(1) & valid
        x = values[sel]
        if x.numel() == 0:
            continue
        mean = x.mean()
        std = torch.sqrt(((x - mean) ** 2).mean() + 1e-8) if x.numel() > 1 else torch.ones((), dtype=x.dtype)
        out[sel] = (x - mean) / (std + 1e-6)
    return out


def normalise_turn_rewards(turn_rewards: torch.Tensor, group_ids: torch.Tensor, norm: str = "joint") -> torch.Tensor:
    """(N,K) normalised turn rewards; NaN marks absent turns (-> 0); the last valid turn is the outcome."""
    valid = ~torch.isnan(turn_rewards)
    r = torch.nan_to_num(turn_rewards.to(torch.float64), nan=0.0)
    if norm == "joint":
        return _normalise(r, valid, group_ids)
    if norm != "separate":
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(IGPO_NORMS)}")
    idx = torch.arange(r.shape[1]).unsqueeze(0)
    last = torch.where(valid, idx, -1).max(1).values.unsqueeze(1)
    final = valid & (idx == last)
    return _normalise(r, final, group_ids) + _normalise(r, valid & ~final, group_ids)


def discounted_turn_returns(rn: torch.Tensor, valid: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """(N,K) A_k = rn_k + gamma * A_{k+1} over valid turns (invalid turns 0)."""
    out = torch.zeros_like(rn)
    nxt = torch.zeros(rn.shape[0], dtype=rn.dtype)
    for k in range(rn.shape[1] - 1, -1, -1):
        cur = rn[:, k] + gamma * nxt
        out[:, k] = torch.where(valid[:, k], cur, torch.zeros_like(cur))
        nxt = torch.where(valid[:, k], cur, nxt)
    return out


def information_gain_rewards(gt_probs: torch.Tensor, outcome: torch.Tensor,
                             n_turns: torch.Tensor | None = None) -> torch.Tensor:
    """(N,K) turn rewards: p_{k+1} - p_k for the non-final turns k < n_i - 1, the outcome on turn n_i - 1,
    NaN after. `n_turns` (N,) defaults to the count of non-NaN p_k per row."""
    p = gt_probs.to(torch.float64)
    if n_turns is None:
        n_turns = (~torch.isnan(p)).sum(1)
    K = max(int(n_turns.max()) if n_turns.numel() else 0, 1)
    if p.shape[1] < K:
        p = torch.nn.functional.pad(p, (0, K - p.shape[1]), value=float("nan"))
    p = p[:, :K]
    out = torch.full_like(p, float("nan"))
    out[:, :-1] = p[:, 1:] - p[:, :-1]
    idx = torch.arange(K).unsqueeze(0)
    out = torch.where(idx < (n_turns - 1).unsqueeze(1), out, torch.full_like(out, float("nan")))
    has = n_turns > 0
    last = (n_turns - 1).clamp(min=0)
    out[has, last[has]] = outcome.to(torch.float64)[has]
    missing = torch.isnan(out) & (idx < n_turns.unsqueeze(1))
    if missing.any():
        i, k = (int(v) for v in missing.nonzero()[0])
        raise ValueError(f"IGPO: row {i} has {int(n_turns[i])} turns but no ground-truth probability around turn {k} "
                         "(the rollout gave no ground truth to teacher-force: an environment without "
                         "answer_for_teacher_forcing, or a row without an answer)")
    return out


def turn_advantages(gt_probs: torch.Tensor, outcome: torch.Tensor, group_ids: torch.Tensor, gamma: float = 1.0,
                    norm: str = "joint", n_turns: torch.Tensor | None = None,
                    extra: torch.Tensor | None = None) -> torch.Tensor:
    """(N,K) turn-level advantages from ground-truth probabilities p_0..p_{K-1} and the outcome reward;
    `extra` (N,K) adds per-turn environment rewards (NaN / absent = 0)."""
    rewards = information_gain_rewards(gt_probs, outcome, n_turns)
    if extra is not None:
        e = torch.nan_to_num(extra.to(torch.float64)[:, : rewards.shape[1]], nan=0.0)
        rewards[:, : e.shape[1]] += e
    valid = ~torch.isnan(rewards)
    return discounted_turn_returns(normalise_turn_rewards(rewards, group_ids, norm), valid, gamma).to(gt_probs.dtype)


def turn_rewards_from_tokens(token_rewards: torch.Tensor, turn_ids: torch.Tensor) -> torch.Tensor:
    """(N,K) per-turn reward = sum of token rewards of the turn's tokens; NaN for turns a row lacks."""
    K = int(turn_ids.max()) + 1 if turn_ids.numel() and int(turn_ids.max()) >= 0 else 0
    out = torch.full((turn_ids.shape[0], K), float("nan"), dtype=torch.float64)
    for k in range(K):
        sel = turn_ids == k
        present = sel.any(1)
        s = (token_rewards.to(torch.float64) * sel).sum(1)
        out[:, k] = torch.where(present, s, out[:, k])
    return out


def broadcast_turns(turn_adv: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,T) token advantages: turn_adv[i, turn_ids[i,t]] on masked tokens of a turn, 0 elsewhere."""
    if turn_adv.shape[1] == 0:
        return torch.zeros_like(mask, dtype=torch.float32)
    idx = turn_ids.clamp(min=0, max=turn_adv.shape[1] - 1)
    vals = turn_adv.gather(1, idx).to(torch.float32)
    return torch.where(turn_ids >= 0, vals, torch.zeros_like(vals)) * mask.to(torch.float32)
