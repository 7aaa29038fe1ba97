"""The driver's side of the critic (PPO): the value pass before the algorithm's driver part, and
the critic's update after the policy's.

The value pass runs on every step's whole batch, fresh and replayed or stale rows alike, so an
off-policy sample's values are the critic's current ones. The critic's mini-batches weight each
response token by 1 / (the mini-batch's response tokens), so the value loss is the mini-batch's token
mean however the rows are cut into micro-batches and ranks (rltrain/workers/critic.py).
"""

from __future__ import annotations

import torch

from algorithms.batch import RolloutBatch
from rltrain.config.schema import CriticConfig
from rltrain.driver.update import update_minibatch
from rltrain.workers.group import RankGroup
from rltrain.workers.sharding import minibatch_slices, shard_for_ranks


def critic_values(critic: RankGroup, batch: RolloutBatch) -> torch.Tensor:
    """(N,T) V(s_t) of every row, the rows sharded over the critic's ranks."""
    shards = shard_for_ranks(len(batch), len(critic))
    return torch.cat(critic.call_each("compute_values", [(batch.index(i),) for i in shards]))


def policy_frozen(cfg: CriticConfig, critic: RankGroup | None, step: int) -> bool:
    """Critic warm-up: during the first `critic.policy_frozen_steps` steps only the critic trains."""
    return critic is not None and step <= cfg.policy_frozen_steps


def rows_with_returns(batch: RolloutBatch) -> RolloutBatch:
    """The rows the advantage stage computed returns for this step: all but replayed ones (a replayed
    row brings back the returns stored when it was generated, targets of an older critic)."""
    if batch.replayed is None or not bool(batch.replayed.any()):
        return batch
    return batch.index(batch.fresh_rows())


def update_critic(critic: RankGroup, batch: RolloutBatch, cfg: CriticConfig) -> dict[str, float]:
    """`critic.epochs` passes of `critic.mini_batches` optimizer steps on (values, returns), fresh rows only."""
    if batch.returns is None or batch.values is None:
        raise ValueError("the critic trains on `values` and `returns`; the advantage stage wrote no returns "
                         "(use an advantage that does, e.g. gae)")
    batch = rows_with_returns(batch)
    metrics: list[dict[str, float]] = []
    for _ in range(cfg.epochs):
        for idx in minibatch_slices(batch, cfg.mini_batches, False):
            mb = batch.index(idx)
            mask = mb.response_mask.to(torch.float32)
            mb.loss_weights = mask / mask.sum().clamp(min=1)
            step = update_minibatch(critic, mb, cfg.micro_batch_size, False, cfg.max_tokens_per_micro_batch)
            metrics.append({k.replace("actor/", "critic/").replace("perf/learner_", "perf/critic_"): v
                            for k, v in step.items() if not k.startswith("timing_s/")})
    out = {k: sum(m.get(k, 0.0) for m in metrics) / len(metrics) for k in metrics[-1]}
    out["faults/critic_skipped"] = out.pop("faults/skipped", 0.0)  # counted with the policy's by the trainer
    return out
