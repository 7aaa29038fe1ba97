"""Global loss normalisation: loss and d loss / d logp are the same whether the update batch is processed
whole or cut into micro-batches of different sizes and into 2 fake ranks (sum of the slices' losses)."""

import pytest
import torch

import algorithms
from algorithms import RolloutBatch
from algorithms.core import AGG_MODES
from algorithms.stages.objectives_clip import CLIP_HIGH, CLIP_LOW
from alg_helpers import current_logp, random_batch

# group sizes 3,3,2,4 -> rows 0-2 | 3-5 | 6-7 | 8-11
SPLITS = {
    "whole": [list(range(12))],
    "micro_5_4_3": [list(range(0, 5)), list(range(5, 9)), list(range(9, 12))],
    "singletons": [[i] for i in range(12)],
    # 2 fake ranks (rows 0-6 and 7-11), each cut into micro-batches of different sizes
    "ranks": [[0, 1, 2], [3, 4, 5, 6], [7, 8], [9, 10, 11]],
}
GROUP_SPLITS = {  # whole groups only (PACS)
    "whole": [list(range(12))],
    "groups": [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9, 10, 11]],
    "ranks": [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]],
}


def split_loss(algo, batch: RolloutBatch, logp0: torch.Tensor, parts, entropy=None):
    logp = logp0.clone().requires_grad_(True)
    total = torch.zeros(())
    metrics = []
    for rows in parts:
        idx = torch.tensor(rows)
        ent = entropy[idx] if entropy is not None else None
        loss, m = algo.loss(logp[idx], batch.index(idx), entropy=ent)
        total = total + loss
        metrics.append(m)
    total.backward()
    return total.detach(), logp.grad, algorithms.reduce_metrics(metrics)


def check_invariance(spec, splits=SPLITS, seed=0, with_entropy=False):
    algo = algorithms.build(spec)
    batch, _ = algo.prepare(random_batch(seed=seed))
    logp0 = current_logp(batch)
    if algo.needs(algorithms.BatchField.CUR_LOGP):
        batch.cur_logp = logp0
        batch, _ = algo.prepare_minibatch(batch)
    entropy = torch.rand(batch.response_mask.shape, generator=torch.Generator().manual_seed(3)) if with_entropy else None
    ref_loss, ref_grad, ref_metrics = split_loss(algo, batch, logp0, splits["whole"], entropy)
    assert ref_grad.abs().sum() > 0
    for name, parts in splits.items():
        loss, grad, metrics = split_loss(algo, batch, logp0, parts, entropy)
        assert torch.allclose(loss, ref_loss, atol=1e-6, rtol=1e-5), name
        assert torch.allclose(grad, ref_grad, atol=1e-7, rtol=1e-5), name
        for k, v in ref_metrics.items():
            assert metrics[k] == pytest.approx(v, rel=1e-5, abs=1e-7), (name, k)
    return algo, batch, logp0, ref_loss


@pytest.mark.parametrize("mode", AGG_MODES)
def test_every_aggregation_mode(mode):
    _, batch, logp0, loss = check_invariance({"preset": "grpo", "aggregation": {"name": mode}})
    # and the loss really is the global one: recompute directly from the whole-batch formula
    adv = batch.advantages
    per_tok = algorithms.clipped_surrogate(logp0, batch.old_logp, adv, 0.8, 1.2) \
        + 0.001 * algorithms.kl_penalty(logp0, batch.ref_logp, "k3")
    direct = algorithms.aggregate(per_tok, batch.response_mask, mode, batch.group_ids)
    assert torch.allclose(loss, direct, atol=1e-6)


def test_forking_mask_is_global():
    algo, batch, logp0, loss = check_invariance({"preset": "dapo+forking"})
    sel = batch.token_weights > 0
    # k = ceil(.2 * #tokens) over the WHOLE batch
    n_tok = int(batch.response_mask.sum())
    assert int(sel.sum()) == -(-n_tok // 5)
    # a per-micro-batch top-20% would pick a different set on the first micro-batch of 5 rows
    from algorithms.forking import high_entropy_mask
    local = high_entropy_mask(batch.entropy[:5], batch.response_mask[:5], 0.2)
    assert not torch.equal(local, sel[:5])
    # normaliser = number of selected tokens (token-mean over selected tokens)
    per_tok = algorithms.clipped_surrogate(logp0, batch.old_logp, batch.advantages, 0.8, 1.28, 10.0)
    assert torch.allclose(loss, (per_tok * sel).sum() / sel.sum(), atol=1e-6)


def test_forking_with_seq_mode_and_regularizer():
    check_invariance({"preset": "grpo+forking", "aggregation": {"name": "seq-mean-token-mean"}})
    check_invariance({"preset": "dcpo+forking", "token_selector": {"normaliser": "all"}})


CODE_SEARCH = {"low_max": 0.8, "low_step": 0.05, "high_max": 2.0, "high_step": 0.05}  # the official yaml's


@pytest.mark.parametrize("mode,params", [("code", {"target": 0.4, **CODE_SEARCH}), ("paper", {"target": 0.27})])
def test_bapo_bounds_are_global(mode, params):
    spec = {"preset": "bapo", "objective": {"mode": mode, **params}}
    algo, batch, logp0, _ = check_invariance(spec)
    bounds = (float(batch.get(CLIP_LOW)[0]), float(batch.get(CLIP_HIGH)[0]))
    # bounds computed on a micro-batch alone differ, so per-slice bounds would change the loss
    part = batch.index(torch.arange(3, 7))
    part.stage_fields.clear()
    local, metrics = algo.prepare_minibatch(part)
    assert (float(local.get(CLIP_LOW)[0]), float(local.get(CLIP_HIGH)[0])) != pytest.approx(bounds)
    assert metrics["bapo/c_low_mean"] == float(local.get(CLIP_LOW)[0])
    assert metrics["bapo/c_high_mean"] == float(local.get(CLIP_HIGH)[0])
    assert algo.state_dict() == {}  # the bounds are searched afresh for each mini-batch: no state


def test_bapo_loss_without_prepare_minibatch_fails():
    algo = algorithms.build({"preset": "bapo"})
    batch, _ = algo.prepare(random_batch())
    with pytest.raises(RuntimeError, match="prepare_minibatch"):
        algo.loss(current_logp(batch), batch)


def test_other_objectives_and_regularizers():
    check_invariance({"preset": "dcpo"})
    check_invariance({"preset": "gspo"})
    check_invariance({"preset": "gtpo"})
    check_invariance({"preset": "dr_grpo"})
    check_invariance({"preset": "w_reinforce", "regularizer": {"name": "entropy", "coef": 0.01}}, with_entropy=True)
    check_invariance({"preset": "remix"})


def test_pacs_group_aligned_splits():
    algo, *_ = check_invariance({"preset": "pacs"}, splits=GROUP_SPLITS)
    assert algo.group_aligned_microbatches


def test_zero_weight_padding_rows_add_nothing():
    algo = algorithms.build({"preset": "dapo"})
    batch, _ = algo.prepare(random_batch())
    logp = current_logp(batch)
    loss, _ = algo.loss(logp, batch)
    pad = batch.index(torch.zeros(3, dtype=torch.long))
    pad.loss_weights = torch.zeros_like(pad.loss_weights)
    padded = RolloutBatch.cat([batch, pad])
    loss2, m = algo.loss(torch.cat([logp, logp[:1].expand(3, -1)]), padded)
    assert torch.allclose(loss, loss2)


def test_pacs_ignores_zero_weight_padding_in_group_statistics():
    algo = algorithms.build({"preset": "pacs"})
    batch, _ = algo.prepare(random_batch())
    logp = current_logp(batch)
    shard = batch.index(torch.arange(8, 12))          # one whole group (id 3)
    loss, _ = algo.loss(logp[8:12], shard)
    pad = batch.index(torch.tensor([8, 8]))           # the trainer pads a rank with zero-weight copies of row 0
    pad.loss_weights = torch.zeros_like(pad.loss_weights)
    padded_loss, _ = algo.loss(torch.cat([logp[8:12], logp[8:9], logp[8:9]]), RolloutBatch.cat([shard, pad]))
    assert torch.allclose(loss, padded_loss)
