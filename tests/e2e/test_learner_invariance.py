"""Loss normalisation through the real DeepSpeed learners: the same batch trained as one micro-batch on
one rank, or as several uneven micro-batches (gradient accumulation) on two ZeRO-2 ranks, gives the
same loss, the same gradient norm and the same updated weights (with gradient checkpointing on the
split side too). The algorithm's loss part and its TIS correction run inside the learners."""

from __future__ import annotations

import math

import pytest
import ray
import torch

import algorithms
from algorithms import RolloutBatch
from rltrain.config.schema import LearnerConfig
from rltrain.driver.trainer import update_minibatch
from rltrain.workers.group import RankGroup
from rltrain.workers.deepspeed_role import RankSpec
from rltrain.workers.learner import Learner
from rltrain.workers.logprobs import pack_rows
from rltrain.workers.net import free_port

pytestmark = pytest.mark.e2e


def _batch(vocab: int, n_groups: int = 4, group: int = 5, shared_prompts: bool = False) -> RolloutBatch:
    """Random rows; with `shared_prompts` a group's rows share one prompt (as GRPO's samples do)."""
    g = torch.Generator().manual_seed(0)
    n = n_groups * group
    prompts = [torch.randint(3, vocab, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
               for _ in range(n)]
    if shared_prompts:
        prompts = [prompts[i - i % group] for i in range(n)]
    responses = [torch.randint(3, vocab, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(n)]
    packed = pack_rows(prompts, responses, pad_id=0)
    return RolloutBatch(
        response_ids=packed["response_ids"], response_mask=packed["response_mask"],
        rewards=torch.randint(0, 2, (n,), generator=g).float(),
        group_ids=torch.arange(n_groups).repeat_interleave(group), prompt_keys=[f"p{i // group}" for i in range(n)],
        input_ids=packed["input_ids"], attention_mask=packed["attention_mask"], resp_start=packed["resp_start"])


def _learners(model: str, ranks: int, zero: int, spec: dict, checkpointing: bool = False,
              share_prompts: bool = False, dtype: str = "float32") -> RankGroup:
    cfg = LearnerConfig(num_ranks=ranks, zero_stage=zero, lr=1e-3, grad_clip=0.0, threads=1,
                        share_prompts=share_prompts)
    port = free_port()
    return RankGroup([ray.remote(Learner).options(num_cpus=0.5).remote(
        RankSpec(model_path=model, cfg=cfg, rank=r, world_size=ranks, master=("127.0.0.1", port),
                 gradient_checkpointing=checkpointing, dtype=dtype), temperature=1.0, algorithm=spec)
        for r in range(ranks)])


def _logprobs(learners: RankGroup, batch: RolloutBatch) -> torch.Tensor:
    return learners.call("compute_logprobs", batch, False)[0]["logp"]


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean"])
def test_split_over_micro_batches_and_ranks_keeps_loss_and_gradient(ray_session, default_model, aggregation,
                                                                     tmp_path):
    """Also with shared prompts on the split side (groups share a prompt; a group straddles micro-batch
    and rank cuts), without gradient checkpointing (which drops the cache, so each row runs its prompt).
    Then the ZeRO-0 side's checkpoint (no ZeRO optimizer partitions, as bf16 learners wrote before they
    ran at stage 1) loads into the ZeRO-2 ranks: their weights become its exactly, the optimizer state
    starts afresh, and they train on (before: FileNotFoundError inside DeepSpeed)."""
    from transformers import AutoConfig

    spec = {"preset": "grpo", "aggregation": {"name": aggregation}}
    algo = algorithms.build(spec)
    batch = _batch(AutoConfig.from_pretrained(default_model).vocab_size, shared_prompts=True)
    one = _learners(default_model, 1, 0, spec)
    checkpointing = aggregation == "token-mean"
    two = _learners(default_model, 2, 2, spec, checkpointing=checkpointing, share_prompts=not checkpointing)
    try:
        logp = _logprobs(one, batch)
        g = torch.Generator().manual_seed(1)  # a fixed draw: the test is the same every run
        batch.old_logp = logp + 0.05 * torch.randn(logp.shape, generator=g)  # ratios != 1: clipping acts
        batch.ref_logp = logp - 0.03 * torch.randn(logp.shape, generator=g)  # the preset's KL term acts too
        batch, _ = algo.prepare(batch)
        whole = update_minibatch(one, batch, micro_batch_size=len(batch), group_aligned=False)
        split = update_minibatch(two, batch, micro_batch_size=3, group_aligned=False,  # 10 rows/rank -> 4 micro-steps
                                 share_prompts=not checkpointing)
        # pg_loss is a small sum of O(1) per-token terms that cancel: float32 rounding of the two splits
        # differs by ~1e-7 absolute; a wrong normaliser would be off by a factor (e.g. 3/20)
        assert whole["actor/pg_loss"] == pytest.approx(split["actor/pg_loss"], rel=1e-5, abs=1e-6)
        assert whole["actor/grad_norm"] > 0
        assert whole["actor/grad_norm"] == pytest.approx(split["actor/grad_norm"], rel=1e-4)
        assert checkpointing == ray.get(two[0].__ray_call__.remote(
            lambda self: self.engine.module.is_gradient_checkpointing))
        w1 = ray.get(one[0].param_checksum.remote())
        w2 = ray.get(two[0].param_checksum.remote())
        assert w1 == pytest.approx(w2, rel=1e-6)
        if checkpointing:  # once is enough
            one.call("save", str(tmp_path))
            two.call("load", str(tmp_path))
            assert ray.get(two[0].param_checksum.remote()) == w1
            again = update_minibatch(two, batch, micro_batch_size=3, group_aligned=False)
            assert again["faults/skipped"] == 0 and math.isfinite(again["actor/grad_norm"])
    finally:
        one.kill()
        two.kill()


def test_fused_old_logprobs_equal_a_separate_pass(ray_session, default_model):
    """One on-policy step without the old-log-prob pass (the learner takes pi_old from its own
    forward) gives the same loss and gradient as computing old log-probs first."""
    from transformers import AutoConfig

    spec = {"preset": "grpo", "regularizer": {"name": "none"}}
    algo = algorithms.build(spec)
    batch = _batch(AutoConfig.from_pretrained(default_model).vocab_size)
    batch, _ = algo.prepare(batch)
    one = _learners(default_model, 1, 0, spec)
    two = _learners(default_model, 2, 0, spec)
    try:
        explicit = batch.copy()
        explicit.old_logp = _logprobs(one, batch)
        separate = update_minibatch(one, explicit, micro_batch_size=len(batch), group_aligned=False)
        batch.sampling_logp = explicit.old_logp.clone()  # an engine that sampled with the learner's weights
        fused = update_minibatch(two, batch, micro_batch_size=4, group_aligned=False)
        assert batch.old_logp is None
        assert separate["actor/pg_loss"] == pytest.approx(fused["actor/pg_loss"], rel=1e-5, abs=1e-7)
        assert separate["actor/grad_norm"] > 0
        assert separate["actor/grad_norm"] == pytest.approx(fused["actor/grad_norm"], rel=1e-4)
        assert fused["rollout/logprob_diff"] < 1e-5 and fused["rollout/entropy"] > 0
    finally:
        one.kill()
        two.kill()


def test_tis_weights_the_policy_term_by_the_capped_engine_ratio(ray_session, default_model):
    """With the TIS correction (algorithm.correction: tis, cap 2), an engine that sampled every token
    with log-prob d lower than the learner's pi_old scales every token's policy term, so the gradient,
    by min(e^d, cap) exactly (pg_loss, a weighted mean, is unchanged by a uniform weight)."""
    from transformers import AutoConfig

    spec = {"preset": "grpo", "regularizer": {"name": "none"}, "aggregation": {"name": "token-mean"}}
    algo = algorithms.build(spec)
    batch = _batch(AutoConfig.from_pretrained(default_model).vocab_size)
    batch, _ = algo.prepare(batch)
    tis = {**spec, "correction": {"name": "tis", "cap": 2.0}}
    plain, tis_a, tis_b = (_learners(default_model, 1, 0, s) for s in (spec, tis, tis))
    try:
        current = _logprobs(plain, batch)
        base = update_minibatch(plain, batch, micro_batch_size=len(batch), group_aligned=False)
        for learners, d in ((tis_a, 0.5), (tis_b, 1.0)):
            shifted = batch.copy()
            shifted.sampling_logp = current - d
            out = update_minibatch(learners, shifted, micro_batch_size=7, group_aligned=False)
            w = min(math.exp(d), 2.0)
            assert out["rollout/tis_weight_mean"] == pytest.approx(w, rel=1e-4)
            assert out["rollout/tis_capped_frac"] == (1.0 if math.exp(d) > 2.0 else 0.0)
            assert out["actor/grad_norm"] == pytest.approx(w * base["actor/grad_norm"], rel=1e-4)
            assert out["actor/pg_loss"] == pytest.approx(base["actor/pg_loss"], rel=1e-4, abs=1e-7)
    finally:
        for group in (plain, tis_a, tis_b):
            group.kill()


def test_token_budget_micro_batches_on_zero3_keep_loss_and_gradient(ray_session, default_model):
    """Rows bucketed by length into micro-batches of at most 16 padded tokens (lengths 3-12: one or
    two rows each), on two ZeRO-3 ranks, against the whole batch on one rank: same loss, gradient
    norm and weights; the output layer (tied to the embeddings) runs in chunks on gathered weights."""
    from transformers import AutoConfig

    spec = {"preset": "grpo", "regularizer": {"name": "none"}}
    algo = algorithms.build(spec)
    batch, _ = algo.prepare(_batch(AutoConfig.from_pretrained(default_model).vocab_size))
    one = _learners(default_model, 1, 0, spec)
    two = _learners(default_model, 2, 3, spec)
    try:
        whole = update_minibatch(one, batch, micro_batch_size=len(batch), group_aligned=False)
        budget = update_minibatch(two, batch, micro_batch_size=len(batch), group_aligned=False, max_tokens=16)
        assert whole["actor/pg_loss"] == pytest.approx(budget["actor/pg_loss"], rel=1e-5, abs=1e-7)
        assert whole["actor/grad_norm"] > 0
        assert whole["actor/grad_norm"] == pytest.approx(budget["actor/grad_norm"], rel=1e-4)
        # ZeRO-3 gathers every parameter collectively: all ranks join the checksum
        assert ray.get(one[0].param_checksum.remote()) == pytest.approx(two.call("param_checksum")[0], rel=1e-6)
    finally:
        one.kill()
        two.kill()


def test_critic_value_loss_is_invariant_to_micro_batch_and_rank_splits(ray_session, default_model):
    """The critic's clipped value loss, weighted per token by 1 / (the mini-batch's tokens): one rank
    and one micro-batch, or two ZeRO-2 ranks and uneven micro-batches, give the same loss, gradient
    norm and updated weights (rltrain/driver/critic.py, rltrain/workers/critic.py)."""
    from transformers import AutoConfig

    from rltrain.config.schema import CriticConfig
    from rltrain.driver.critic import critic_values, update_critic
    from rltrain.workers.critic import Critic

    batch = _batch(AutoConfig.from_pretrained(default_model).vocab_size)

    def critics(ranks: int, zero: int) -> RankGroup:
        cfg = CriticConfig(num_ranks=ranks, zero_stage=zero, lr=1e-3, grad_clip=0.0, threads=1)
        port = free_port()
        return RankGroup([ray.remote(Critic).options(num_cpus=0.5).remote(
            RankSpec(model_path=default_model, cfg=cfg, rank=r, world_size=ranks, master=("127.0.0.1", port)),
            value_clip=0.2) for r in range(ranks)])

    one, two = critics(1, 0), critics(2, 2)
    try:
        assert torch.equal(critic_values(one, batch), torch.zeros_like(batch.response_mask))  # zero head
        g = torch.Generator().manual_seed(1)
        batch.values = 0.3 * torch.randn(batch.response_mask.shape, generator=g) * batch.response_mask
        batch.returns = torch.randn(batch.response_mask.shape, generator=g) * batch.response_mask
        whole = update_critic(one, batch, CriticConfig(micro_batch_size=len(batch)))
        split = update_critic(two, batch, CriticConfig(micro_batch_size=3))
        assert whole["critic/value_loss"] == pytest.approx(split["critic/value_loss"], rel=1e-5)
        assert whole["critic/clipfrac"] == pytest.approx(split["critic/clipfrac"], rel=1e-5, abs=1e-7)
        assert whole["critic/grad_norm"] > 0
        assert whole["critic/grad_norm"] == pytest.approx(split["critic/grad_norm"], rel=1e-4)
        assert ray.get(one[0].param_checksum.remote()) == pytest.approx(ray.get(two[0].param_checksum.remote()), rel=1e-6)
        assert critic_values(one, batch).abs().sum() > 0  # the head moved
    finally:
        one.kill()
        two.kill()


@pytest.mark.parametrize("dtype,zero", [("bfloat16", 0), ("float32", 2)])
def test_non_finite_steps_dropped_by_the_optimizer_count_as_skipped(ray_session, default_model, dtype, zero):
    """bf16 weights at learner.zero_stage 0 run DeepSpeed's BF16 optimizer (ZeRO-1's path): fp32 master weights
    and fp32 gradient buffers summed over the micro-batches. A non-finite gradient that DeepSpeed's optimizer
    drops itself (the BF16 optimizer; fp32 weights at ZeRO-2) counts as a skipped step, the weights untouched,
    not a stopped run."""
    from transformers import AutoConfig

    spec = {"preset": "grpo", "regularizer": {"name": "none"}}
    batch, _ = algorithms.build(spec).prepare(_batch(AutoConfig.from_pretrained(default_model).vocab_size))
    learners = _learners(default_model, 1, zero, spec, dtype=dtype)
    try:
        m = update_minibatch(learners, batch, micro_batch_size=4, group_aligned=False)  # 5 micro-batches
        assert m["faults/skipped"] == 0 and 0 < m["actor/grad_norm"] < float("inf")
        if dtype == "bfloat16":
            info = ray.get(learners[0].__ray_call__.remote(lambda self: (
                self.zero_stage, type(self.engine.optimizer).__name__,
                {str(g.dtype) for g in self.engine.optimizer.fp32_groups_gradients_flat},
                str(next(self.engine.module.parameters()).dtype))))
            assert info == (1, "BF16_Optimizer", {"torch.float32"}, "torch.bfloat16")
        learners.call("set_algorithm", {**spec, "objective": {"name": "rltrain_user_parts:NaNObjective"}})
        before = ray.get(learners[0].param_checksum.remote())
        m = update_minibatch(learners, batch, micro_batch_size=4, group_aligned=False)
        assert m["faults/skipped"] == 1
        assert ray.get(learners[0].param_checksum.remote()) == before
    finally:
        learners.kill()

