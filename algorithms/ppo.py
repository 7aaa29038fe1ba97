"""PPO with a learned critic: GAE advantages, the clipped value loss, the KL penalty in the reward.

- GAE (Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
  Estimation", eq. 16): delta_t = r_t + gamma * V(s_{t+1}) - V(s_t), A_t = sum_l (gamma*lam)^l
  delta_{t+l}, returns R_t = A_t + V(s_t) (the critic's regression target). The state after the last
  response token is terminal (V = 0). Tokens outside the response mask (tool observations) are not
  steps: the recursion passes over them, so the last real token before an observation bootstraps
  from the first real token after it.
- Per-token reward with the KL penalty (InstructGPT, Ouyang et al. 2022, eq. 2; Stiennon et al. 2020):
  r_t = -beta * (log pi_old(y_t) - log pi_ref(y_t)) on every response token, plus the outcome
  reward (and any per-turn environment reward) on its token.
- Clipped value loss (the PPO2 baselines code; OpenRLHF's `ValueLoss`): with V_old the values
  before the update, V_clip = V_old + clip(V - V_old, -c, c), loss_t = 0.5 * max((V - R)^2,
  (V_clip - R)^2); c = 0 turns clipping off (loss 0.5 * (V - R)^2).
- Running reward normalisation (OpenRLHF's `--normalize_reward`, its `RunningMoments`): the outcome
  reward is standardised by the mean and standard deviation of every outcome reward seen so far
  (this batch's included), so the critic's targets have unit scale whatever the reward model's
  range: a zero-initialised head learns a spread of +-5 as slowly as Adam's steps allow otherwise.
- Explained variance 1 - Var(R - V) / Var(R) over the response tokens (1: perfect, 0: no better
  than a constant, < 0: worse).
"""

from __future__ import annotations

import torch


def kl_shaped_token_rewards(rewards: torch.Tensor, mask: torch.Tensor, old_logp: torch.Tensor | None = None,
                            ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                            token_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """(N,T) per-token rewards: -kl_coef * (old - ref) on each response token, the outcome reward
    (N,) on each row's last response token, plus `token_rewards` (N,T) where given."""
    mask = mask.to(torch.float32)
    out = torch.zeros_like(mask)
    if kl_coef:
        if old_logp is None or ref_logp is None:
            raise ValueError("a KL penalty in the reward needs old and reference log-probs")
        out = out - kl_coef * (old_logp - ref_logp) * mask
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    last = torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=1).values
    rows = torch.nonzero(last >= 0, as_tuple=True)[0]
    out[rows, last[rows]] += rewards.to(out.dtype)[rows]
    if token_rewards is not None:
        out = out + token_rewards.to(out.dtype) * mask
    return out


def gae(token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (N,T) and zero off the mask; see the module docstring."""
    mask = mask.to(torch.float32)
    r, v = token_rewards.to(torch.float32) * mask, values.to(torch.float32) * mask
    n, t_len = mask.shape
    adv = torch.zeros_like(mask)
    running = torch.zeros(n)          # A of the next real token
    next_value = torch.zeros(n)       # V of the next real token (0 after the last: terminal)
    for t in reversed(range(t_len)):
        real = mask[:, t] > 0
        delta = r[:, t] + gamma * next_value - v[:, t]
        a_t = delta + gamma * lam * running
        adv[:, t] = torch.where(real, a_t, torch.zeros_like(a_t))
        running = torch.where(real, a_t, running)
        next_value = torch.where(real, v[:, t], next_value)
    return adv, (adv + v) * mask


class RunningMoments:
    """Mean and (population) variance of every value passed to `update`, merged batch by batch
    (Chan et al.'s parallel form of Welford's update); a state dict for checkpoints."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).flatten()
        n = x.numel()
        if n == 0:
            return
        b_mean, b_m2 = float(x.mean()), float(((x - x.mean()) ** 2).sum())
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta ** 2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return (self.m2 / self.count) ** 0.5 if self.count else 1.0

    def normalize(self, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        return (x - self.mean) / (self.std + eps)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, d: dict) -> None:
        self.count, self.mean, self.m2 = int(d["count"]), float(d["mean"]), float(d["m2"])


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (zero off the mask)."""
    m = mask.to(x.dtype)
    count = m.sum().clamp(min=1)
    mean = (x * m).sum() / count
    var = (((x - mean) * m) ** 2).sum() / count
    return (x - mean) / (var.sqrt() + eps) * m


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token loss, per-token 0/1: the clipped branch was the larger and active)."""
    unclipped = (values - returns) ** 2
    if clip <= 0:
        return 0.5 * unclipped, torch.zeros_like(unclipped)
    v_clip = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (v_clip - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped), (clipped > unclipped).to(values.dtype)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask.to(torch.float64)
    count = m.sum().clamp(min=1)

    def var(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        mean = (x * m).sum() / count
        return (((x - mean) * m) ** 2).sum() / count

    total = var(returns)
    return float(1 - var(returns - values) / total) if total > 0 else float("nan")


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair -log sigmoid(r_chosen - r_rejected [- margin]) (Bradley & Terry 1952; InstructGPT eq. 1)."""
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    return -torch.nn.functional.logsigmoid(diff)
