"""Spec resolution, stage composition, config errors, data policies and state round trips."""

import io
import math
import sys
import types
from dataclasses import dataclass

import pytest
import torch

import algorithms
from algorithms import BatchField, ConfigError, RolloutBatch
from algorithms.stages.advantages import LABELS, SEQ_ADVANTAGES
from algorithms.stages.base import Objective, wmean
from algorithms.stages.objectives_clip import BEHAVIOUR_ROWS, CLIP_LOW
from alg_helpers import current_logp, random_batch


def test_every_preset_builds_and_presets_are_data():
    for name in algorithms.PRESETS:
        algo = algorithms.build({"preset": name})
        assert set(algo.spec) == set(algorithms.STAGE_KINDS)
    F = algorithms.BatchField
    on_demand = {F.REF_LOGP, F.ENTROPY, F.CUR_LOGP}
    assert algorithms.build({"preset": "grpo"}).reads & on_demand == {F.REF_LOGP}
    assert algorithms.build({"preset": "bapo"}).reads & on_demand == {F.CUR_LOGP}
    assert algorithms.build({"preset": "gtpo"}).reads & on_demand == {F.ENTROPY}
    assert algorithms.build({"preset": "pacs"}).group_aligned_microbatches
    assert not algorithms.build({"preset": "dapo"}).group_aligned_microbatches


def test_plus_composition_and_param_only_override():
    algo = algorithms.build({"preset": "dapo+forking", "objective": {"high": 1.3}})
    assert algo.spec["objective"] == {"name": "ppo_clip", "low": 0.8, "high": 1.3, "dual_clip": 10.0}
    assert algo.spec["token_selector"]["name"] == "forking"
    assert algo.spec["data_policy"]["name"] == "dynamic_sampling"
    F = algorithms.BatchField
    on_demand = {F.REF_LOGP, F.ENTROPY, F.CUR_LOGP}
    assert algo.reads & on_demand == {F.ENTROPY}
    # a new name replaces the stage (params start from that stage's defaults)
    algo = algorithms.build({"preset": "grpo", "objective": {"name": "bapo"}})
    assert algo.spec["objective"] == {"name": "bapo"}
    assert algo.reads & on_demand == {F.REF_LOGP, F.CUR_LOGP}


@pytest.mark.parametrize("spec,key,listed", [
    ({"preset": "grpo", "objective": {"hgih": 1.3}}, "algorithm.objective.hgih", "high"),
    ({"preset": "grpo", "objective": {"name": "ppo_clipp"}}, "algorithm.objective.name", "ppo_clip"),
    ({"preset": "grpo", "objectiv": {}}, "algorithm.objectiv", "objective"),
    ({"preset": "grpoo"}, "algorithm.preset", "dapo"),
    ({"preset": "dapo+forkin"}, "algorithm.preset", "forking"),
    ({"preset": "grpo", "objective": {"low": 1.5}}, "algorithm.objective.low", "<= 1.0"),
    ({"preset": "grpo", "objective": {"high": "big"}}, "algorithm.objective.high", "float"),
    ({"preset": "grpo", "objective": {"dual_clip": 1.1}}, "algorithm.objective.dual_clip", "> high"),
    ({"preset": "grpo", "regularizer": {"kind": "k9"}}, "algorithm.regularizer.kind", "k3"),
    ({"preset": "grpo", "aggregation": {"name": "mean"}}, "algorithm.aggregation.name", "group-token-mean"),
    ({"preset": "grpo", "advantage": {"name": "nope.mod:thing"}}, "algorithm.advantage.name", "cannot import"),
    ({"preset": "grpo", "token_selector": {"top_ratio": 0.3}}, "algorithm.token_selector.top_ratio", "name"),
])
def test_config_errors_name_the_key(spec, key, listed):
    with pytest.raises(ConfigError) as e:
        algorithms.build(spec)
    assert str(e.value).startswith(key + ":") and listed in str(e.value)
    assert isinstance(e.value, ValueError) and e.value.key == key


def test_import_path_stage():
    mod = types.ModuleType("my_ext_objectives")

    class HalfPG(Objective):
        """-A * logp * scale, a user objective living outside rltrain."""

        @dataclass
        class Params:
            scale: float = 1.0

        def loss(self, logp, mb, w):
            per_tok = -mb.advantages * logp * self.params.scale
            return (per_tok * w).sum(), wmean("actor/pg_loss", per_tok, w)

    mod.HalfPG = HalfPG
    sys.modules["my_ext_objectives"] = mod
    try:
        algo = algorithms.build({"preset": "dr_grpo", "objective": {"name": "my_ext_objectives:HalfPG", "scale": 0.5}})
        batch, _ = algo.prepare(random_batch())
        logp = current_logp(batch)
        loss, _ = algo.loss(logp, batch)
        expected = (-batch.advantages * logp * 0.5 * batch.loss_weights).sum()
        assert torch.allclose(loss, expected)
        with pytest.raises(ConfigError, match="algorithm.objective.scale"):
            algorithms.build({"preset": "grpo", "objective": {"name": "my_ext_objectives:HalfPG", "scale": "x"}})
    finally:
        del sys.modules["my_ext_objectives"]


def test_a_stage_that_sets_an_undeclared_field_fails_naming_it():
    """The stage output contract: what a stage sets on the batch is among its `writes`. A user objective
    whose driver hook sets the stage field `clip_low` or the core field `token_weights` without declaring it
    fails where it runs, naming the stage and field; declaring it is enough."""
    mod = types.ModuleType("my_ext_writers")

    class SneakyClip(Objective):
        def prepare(self, batch):
            batch.put(CLIP_LOW, torch.full((len(batch),), 0.5))
            return {}

        def loss(self, logp, mb, w):
            per_tok = -mb.advantages * logp
            return (per_tok * w).sum(), wmean("actor/pg_loss", per_tok, w)

    class DeclaredClip(SneakyClip):
        writes = frozenset({CLIP_LOW})

    class SneakyWeights(SneakyClip):
        def prepare(self, batch):
            batch.token_weights = torch.ones_like(batch.response_mask)
            return {}

    class SneakyDelete(SneakyClip):
        def prepare(self, batch):
            batch.stage_fields.pop("labels")  # dropping an earlier stage's field is a write too
            return {}

    mod.SneakyClip, mod.DeclaredClip, mod.SneakyWeights = SneakyClip, DeclaredClip, SneakyWeights
    mod.SneakyDelete = SneakyDelete
    sys.modules["my_ext_writers"] = mod
    try:
        sneaky = algorithms.build({"preset": "dr_grpo", "objective": {"name": "my_ext_writers:SneakyClip"}})
        with pytest.raises(RuntimeError, match="objective stage 'my_ext_writers:SneakyClip' set batch fields it "
                                               "does not declare in `writes`: clip_low"):
            sneaky.prepare(random_batch())
        weights = algorithms.build({"preset": "dr_grpo", "objective": {"name": "my_ext_writers:SneakyWeights"}})
        with pytest.raises(RuntimeError, match="does not declare in `writes`: token_weights"):
            weights.prepare(random_batch())
        deleting = algorithms.build({"preset": "pacs", "objective": {"name": "my_ext_writers:SneakyDelete"}})
        with pytest.raises(RuntimeError, match="does not declare in `writes`: labels"):
            deleting.prepare(random_batch())
        batch, _ = algorithms.build({"preset": "dr_grpo", "objective": {"name": "my_ext_writers:DeclaredClip"}}).prepare(
            random_batch())
        assert torch.all(batch.get(CLIP_LOW) == 0.5)
    finally:
        del sys.modules["my_ext_writers"]


def test_data_policies():
    b = random_batch()  # group 1 (rows 3-5) is all-equal
    keep = algorithms.build({"preset": "dapo"}).keep(b)
    gids = b.group_ids
    for g in gids.unique():
        rows = gids == g
        equal = bool((b.rewards[rows] == b.rewards[rows][0]).all())
        assert keep[rows].tolist() == [not equal] * int(rows.sum())
    assert not keep[3:6].any()
    assert algorithms.build({"preset": "psr"}).keep(b).tolist() == (b.rewards > 0.5).tolist()
    assert algorithms.build({"preset": "nsr"}).keep(b).tolist() == (b.rewards <= 0.5).tolist()
    assert algorithms.build({"preset": "grpo"}).keep(b).all()


def _two_sample_batch(lengths, rewards, T=10):
    mask = (torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    return RolloutBatch(response_ids=mask.long(), response_mask=mask, rewards=torch.tensor(rewards),
                        group_ids=torch.zeros(len(lengths), dtype=torch.long), prompt_keys=["k"] * len(lengths),
                        old_logp=torch.full((len(lengths), T), -1.0))


def test_dapo_overlong_shaping_reads_lengths_from_mask():
    # T = 10, buffer .2*10 = 2 -> expected length 8: lengths 5 -> 0 ; 9 -> -(9-8)/2 = -.5
    # shaped rewards [1, .5]: mean .75, unbiased std sqrt(2*.25^2) = .353553 -> A = +-.25/.353553
    batch, metrics = algorithms.build({"preset": "dapo"}).prepare(_two_sample_batch([5, 9], [1.0, 1.0]))
    a = 0.25 / (math.sqrt(2 * 0.25 ** 2) + 1e-6)
    assert torch.allclose(batch.advantages[:, 0], torch.tensor([a, -a]), atol=1e-5)
    assert torch.equal(batch.advantages[1, 9:], torch.zeros(1))  # padding
    assert metrics["reward/overlong_penalty_mean"] == pytest.approx(-0.25)
    # the shaping knob off -> all-equal rewards, zero advantage
    plain, _ = algorithms.build({"preset": "dapo", "advantage": {"overlong_buffer_frac": 0.0}}).prepare(
        _two_sample_batch([5, 9], [1.0, 1.0]))
    assert torch.equal(plain.advantages, torch.zeros_like(plain.advantages))


def test_dapo_overlong_l_max_is_the_generation_budget_not_the_batch_width():
    # budget 20 (rollout.max_new_tokens), batch width 10: buffer .2*20 = 4, expected length 16.
    # Lengths 5 and 9 are far from the budget: no penalty (with L_max = width 10, length 9 was penalised)
    b = _two_sample_batch([5, 9], [1.0, 1.0])
    b.max_response_len = 20
    batch, metrics = algorithms.build({"preset": "dapo"}).prepare(b)
    assert metrics["reward/overlong_penalty_frac"] == 0.0 and torch.equal(batch.advantages, torch.zeros(2, 10))
    # budget 10 again, with lengths 5 and 9: one of two samples penalised
    b.max_response_len = 10
    _, metrics = algorithms.build({"preset": "dapo"}).prepare(b)
    assert metrics["reward/overlong_penalty_frac"] == 0.5


def test_dr_grpo_normaliser_is_a_constant():
    # seq-mean-token-sum-norm: w = m / (N_seq * budget), budget = max_response_len, whatever the batch width
    b = _two_sample_batch([3, 5], [1.0, 0.0], T=6)
    b.max_response_len = 16
    batch, _ = algorithms.build({"preset": "dr_grpo"}).prepare(b)
    assert torch.allclose(batch.loss_weights, b.response_mask / (2 * 16))
    wider = _two_sample_batch([3, 5], [1.0, 0.0], T=12)  # same samples padded wider: same weights
    wider.max_response_len = 16
    wide_batch, _ = algorithms.build({"preset": "dr_grpo"}).prepare(wider)
    assert torch.allclose(wide_batch.loss_weights[:, :6], batch.loss_weights)
    # an explicit length_budget wins
    fixed, _ = algorithms.build({"preset": "dr_grpo", "aggregation": {"length_budget": 4}}).prepare(b)
    assert torch.allclose(fixed.loss_weights, b.response_mask / (2 * 4))


def test_dcpo_plus_forking_composition():
    algo = algorithms.build({"preset": "dcpo+forking"})
    batch, metrics = algo.prepare(random_batch())
    sel = algorithms.forking.high_entropy_mask(batch.entropy, batch.response_mask, 0.2)
    assert torch.equal(batch.token_weights > 0, sel)
    assert metrics["forking/selected_frac"] == pytest.approx(float(sel.sum() / batch.response_mask.sum()))
    logp = current_logp(batch)
    loss, m = algo.loss(logp, batch)
    low, high = algorithms.dcpo.dynamic_clip_bounds(batch.old_logp.exp(), 0.16, 0.2, 10.0)
    per_tok = algorithms.clipped_surrogate(logp, batch.old_logp, batch.advantages, low, high, 10.0)
    # group-token-mean over the selected tokens only
    w = algorithms.aggregation_weights(batch.response_mask * sel, "group-token-mean", batch.group_ids)
    assert torch.allclose(loss, (per_tok * w).sum(), atol=1e-6)
    assert metrics["dcpo/nonzero_adv_frac"] > 0 and 0.5 <= algorithms.reduce_metrics([m])["dcpo/clip_low_mean"] <= 1


def test_gtpo_loss_matches_per_completion_formula():
    algo = algorithms.build({"preset": "gtpo"})
    batch, _ = algo.prepare(random_batch(seed=4))
    logp = current_logp(batch).requires_grad_(True)
    loss, _ = algo.loss(logp, batch)
    raw = algorithms.grpo.group_advantages(batch.rewards, batch.group_ids, scale="none")
    h = algorithms.masked_mean(batch.entropy, batch.response_mask, dim=-1)
    a = torch.where(h <= 0.7, raw - 0.1 * h, torch.zeros_like(raw))
    w, n = algorithms.gtpo.conflict_weights(batch.response_ids, raw, batch.response_mask, batch.group_ids, 0)
    m = batch.response_mask
    per_seq = (-(a.unsqueeze(1)) * w * m).sum(1) / m.sum(1) / n  # ratio value 1
    assert torch.allclose(loss, per_seq.mean(), atol=1e-6)
    loss.backward()
    # gradient of ratio = exp(logp - sg(logp)) is the REINFORCE gradient
    assert torch.allclose(logp.grad, -(a.unsqueeze(1)) * w * m / m.sum(1, keepdim=True) / n.unsqueeze(1) / len(m),
                          atol=1e-6)


def test_reduce_metrics_exact():
    out = algorithms.reduce_metrics([{"a": (2.0, 1.0), "b": (0.0, 0.0), "m": algorithms.Max(2.0)},
                                     {"a": (4.0, 3.0), "c": 5.0, "m": algorithms.Max(-1.0)}])
    # a: (2+4)/(1+3) ; b has zero weight -> dropped ; c plain -> (5, 1) ; m: max(2, -1)
    assert out == {"a": 1.5, "c": 5.0, "m": 2.0}


def test_dcpo_state_dict_round_trip():
    algo = algorithms.build({"preset": "dcpo"})
    for seed in (0, 1):
        algo.prepare(random_batch(seed=seed))
    state = algo.state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    restored = algorithms.build({"preset": "dcpo"})
    restored.load_state_dict(torch.load(buf))
    assert restored.state_dict() == state
    nxt = random_batch(seed=2)
    a, _ = algo.prepare(nxt)
    b, _ = restored.prepare(nxt)
    assert torch.equal(a.advantages, b.advantages)
    assert algo.state_dict() == restored.state_dict()
    # and the state matters: a fresh algorithm gives different advantages on the same batch
    fresh, _ = algorithms.build({"preset": "dcpo"}).prepare(nxt)
    assert not torch.equal(fresh.advantages, a.advantages)


def test_remix_centred_clip_convex_kl_and_reincarnation():
    algo = algorithms.build({"preset": "remix", "objective": {"reincarnate_at": 3}})
    b = random_batch()                              # step 1
    b.versions = torch.tensor([0] * 6 + [1] * 6)   # rows 0-5 replayed from an older policy
    b.prox_logp = b.old_logp + 0.05                # pi_k, the policy before this step's update
    prepared, metrics = algo.prepare(b)
    assert prepared.get(BEHAVIOUR_ROWS).tolist() == [True] * 6 + [False] * 6
    assert metrics["remix/replayed_frac"] == 0.5
    logp = current_logp(prepared)
    loss, m = algo.loss(logp, prepared)
    behaviour = torch.where(prepared.get(BEHAVIOUR_ROWS).unsqueeze(1), prepared.sampling_logp, prepared.old_logp)
    low, high = algorithms.remix.centred_clip_bounds(prepared.prox_logp, behaviour, 0.2, 0.2)
    per_tok = algorithms.clipped_surrogate(logp, behaviour, prepared.advantages, low, high)
    kl = algorithms.remix.convex_kl(logp, prepared.ref_logp, prepared.prox_logp, 1.0, "k3")  # lambda(1) = 1
    assert torch.allclose(loss, ((per_tok + 0.001 * kl) * prepared.loss_weights).sum(), atol=1e-6)
    assert algorithms.reduce_metrics([m])["remix/lambda"] == 1.0
    # reincarnation at step 3: on-policy from then on, the reference reset to the policy of step 3
    assert algo.plan(2) == algorithms.StepPlan(off_policy=True, reference_from_step=None)
    assert algo.plan(4) == algorithms.StepPlan(off_policy=False, reference_from_step=3)
    b.step = 3
    prepared, metrics = algo.prepare(b)
    assert metrics["remix/reincarnated"] == 1.0 and not prepared.get(BEHAVIOUR_ROWS).any()
    assert algo.state_dict() == {}  # everything follows from the step: nothing to checkpoint


def test_igpo_stage_paths():
    algo = algorithms.build({"preset": "igpo"})
    # single-turn rows (one turn, no ground-truth probability needed): the outcome normalised in the group
    b = _two_sample_batch([3, 5], [1.0, 0.0])
    b.turn_ids = torch.where(b.response_mask > 0, 0, -1).long()
    b.token_rewards, b.gt_probs = torch.zeros(2, 10), torch.full((2, 1), float("nan"))
    out, _ = algo.prepare(b)
    a = 0.5 / (math.sqrt(0.25 + 1e-8) + 1e-6)
    assert torch.allclose(out.advantages[:, 0], torch.tensor([a, -a]), atol=1e-5)
    assert torch.equal(out.advantages[0, 3:], torch.zeros(7))
    # two turns each (turn 0: 2 policy tokens + 1 observation token, turn 1: 2 tokens); p = [.2, .7] and [.2, .1]
    # turn rewards [.5, 1] and [-.1, 0] (outcomes 1, 0); joint mean .35, population std sqrt(.1925 + 1e-8)
    b = _two_sample_batch([5, 5], [1.0, 0.0])
    b.turn_ids = torch.tensor([[0, 0, 0, 1, 1] + [-1] * 5] * 2)
    b.response_mask[:, 2] = 0.0  # the observation token
    b.token_rewards, b.gt_probs = torch.zeros(2, 10), torch.tensor([[0.2, 0.7], [0.2, 0.1]])
    out, metrics = algo.prepare(b)
    s = math.sqrt(0.1925 + 1e-8) + 1e-6
    expected = torch.tensor([[0.8, 0.8, 0.0, 0.65, 0.65], [-0.8, -0.8, 0.0, -0.35, -0.35]]) / s
    assert torch.allclose(out.advantages[:, :5], expected, atol=1e-5)
    assert metrics["igpo/info_gain_mean"] == pytest.approx(0.2)  # (.5 - .1) / 2
    assert metrics["igpo/gt_prob_first"] == pytest.approx(0.2) and metrics["igpo/gt_prob_last"] == pytest.approx(0.4)
    # a multi-turn row without its ground-truth probabilities is an error naming the row and turn
    b.gt_probs = torch.tensor([[0.2, float("nan")], [0.2, 0.1]])
    with pytest.raises(ValueError, match="row 0 has 2 turns but no ground-truth probability around turn 0"):
        algo.prepare(b)


def test_entropy_metric_prefers_current_entropy():
    algo = algorithms.build({"preset": "dr_grpo"})
    batch, _ = algo.prepare(random_batch())
    logp = current_logp(batch)
    w = batch.loss_weights
    _, m = algo.loss(logp, batch)  # old-pass entropy from the batch
    assert algorithms.reduce_metrics([m])["actor/entropy"] == pytest.approx(float((batch.entropy * w).sum() / w.sum()))
    cur = torch.full_like(logp, 0.25)
    _, m = algo.loss(logp, batch, entropy=cur)
    assert algorithms.reduce_metrics([m])["actor/entropy"] == pytest.approx(0.25)


class _ReadsNothingWritten(Objective):
    """A user objective that reads `labels`, which only the PACS advantage writes."""

    reads = frozenset({LABELS})

    @dataclass
    class Params:
        pass

    def loss(self, logp, mb, w):
        return (logp * w).sum(), {}


class _Typo(_ReadsNothingWritten):
    reads = frozenset({"old_logpp"})


class _KeepsState(_ReadsNothingWritten):
    reads = frozenset()

    def loss(self, logp, mb, w):
        self.calls = getattr(self, "calls", 0) + 1   # state in the loss: forbidden
        return (logp * w).sum(), {}


def _with_module(**classes):
    mod = types.ModuleType("my_ext_stages")
    for k, v in classes.items():
        setattr(mod, k, v)
    sys.modules["my_ext_stages"] = mod


def test_a_read_nobody_writes_fails_at_build_naming_stage_and_field():
    _with_module(R=_ReadsNothingWritten, T=_Typo)
    try:
        with pytest.raises(ConfigError) as e:
            algorithms.build({"preset": "grpo", "objective": {"name": "my_ext_stages:R"}})
        assert e.value.key == "algorithm.objective" and "my_ext_stages:R" in str(e.value) and "labels" in str(e.value)
        # written by an earlier stage: fine
        algorithms.build({"preset": "pacs", "objective": {"name": "my_ext_stages:R"}})
        # a typo in a declared field is not silently ignored
        with pytest.raises(ConfigError, match="old_logpp.*not a batch field"):
            algorithms.build({"preset": "grpo", "objective": {"name": "my_ext_stages:T"}})
    finally:
        del sys.modules["my_ext_stages"]


def test_a_stage_reading_values_needs_a_stage_that_writes_the_critics_returns():
    """Reading `values` makes the runtime start a critic, which trains on `returns`: a spec where no stage
    writes them fails at build (before any actor starts), naming the reader."""
    from algorithms.algorithm import check_field_flow
    from algorithms.stages.base import AdvantageEstimator

    class ValueBaseline(AdvantageEstimator):
        name = "value_baseline"
        reads = frozenset({algorithms.BatchField.REWARDS, algorithms.BatchField.VALUES})
        writes = frozenset({algorithms.BatchField.ADVANTAGES})

    stages = dict(algorithms.build({"preset": "grpo"}).stages, advantage=ValueBaseline())
    with pytest.raises(ConfigError, match="stage 'value_baseline' reads values, so the runtime starts a critic, "
                                          "which trains on `returns`; no stage writes them"):
        check_field_flow(stages)
    check_field_flow(algorithms.build({"preset": "ppo"}).stages)  # gae writes them


def test_phase_order_data_policy_cannot_read_log_prob_pass_fields():
    from algorithms.algorithm import check_field_flow
    from algorithms.stages.base import DataPolicy

    class EntropyFilter(DataPolicy):
        name = "entropy_filter"
        reads = frozenset({algorithms.BatchField.ENTROPY})

    stages = dict(algorithms.build({"preset": "grpo"}).stages, data_policy=EntropyFilter())
    with pytest.raises(ConfigError) as e:
        check_field_flow(stages)  # data policies run on scored rollouts, before any log-prob pass
    assert e.value.key == "algorithm.data_policy" and "entropy_filter" in str(e.value) and "entropy" in str(e.value)


def test_learner_loss_part_is_pure():
    _with_module(S=_KeepsState)
    try:
        algo = algorithms.build({"preset": "dr_grpo", "objective": {"name": "my_ext_stages:S"}})
        batch, _ = algo.prepare(random_batch())
        with pytest.raises(RuntimeError, match="loss\\(\\) must be pure"):
            algo.loss(current_logp(batch), batch)
    finally:
        del sys.modules["my_ext_stages"]
    # the driver part and the loss part are separate objects built from the same spec
    spec = {"preset": "dcpo"}
    driver, loss = algorithms.build_driver(spec), algorithms.build_loss(spec)
    assert driver.objective is not loss.objective and not hasattr(loss, "state_dict")


def test_tis_correction_stage_weights_the_policy_term():
    # old - sampling = log(3) on token 0 (capped at 2), log(0.5) on token 1; advantage 1, token-mean
    old = torch.tensor([[-1.0, -1.0]])
    batch = RolloutBatch(response_ids=torch.ones(1, 2, dtype=torch.long), response_mask=torch.ones(1, 2),
                         rewards=torch.tensor([1.0]), group_ids=torch.tensor([0]), prompt_keys=["k"], old_logp=old,
                         sampling_logp=old - torch.tensor([[math.log(3.0), math.log(0.5)]]))
    plain = algorithms.build({"preset": "dr_grpo", "advantage": {"name": "nsr", "mode": "psr"}})
    tis = algorithms.build({"preset": "dr_grpo", "advantage": {"name": "nsr", "mode": "psr"},
                            "correction": {"name": "tis", "cap": 2.0}})
    prepared, _ = plain.prepare(batch)
    logp = old.clone().requires_grad_(True)
    loss, _ = tis.loss(logp, prepared)
    loss.backward()
    # d/dlogp of -A * ratio * w at ratio 1: -A * w * loss_weight; weights min(3, 2) = 2 and 0.5
    lw = prepared.loss_weights
    assert torch.allclose(logp.grad, -torch.tensor([[2.0, 0.5]]) * lw)
    _, m = tis.loss(old, prepared)
    red = algorithms.reduce_metrics([m])
    assert red["rollout/tis_weight_mean"] == pytest.approx(1.25) and red["rollout/tis_capped_frac"] == pytest.approx(0.5)
    assert "rollout/tis_weight_mean" not in algorithms.reduce_metrics([plain.loss(old, prepared)[1]])


def test_replayed_rows_keep_their_stored_advantages():
    b = random_batch()                         # groups 0-2 | 3-5 | 6-7 | 8-11
    stored = torch.full_like(b.response_mask, 0.7) * b.response_mask
    b.replayed = torch.tensor([False] * 6 + [True] * 6)
    b.advantages = torch.where(b.replayed.unsqueeze(1), stored, torch.zeros_like(stored))
    algo = algorithms.build({"preset": "dr_grpo"})
    out, _ = algo.prepare(b)
    assert torch.equal(out.advantages[6:], stored[6:])            # replayed: as stored at generation time
    fresh, _ = algorithms.build({"preset": "dr_grpo"}).prepare(b.index(torch.arange(6)).copy())
    assert torch.equal(out.advantages[:6], fresh.advantages)      # fresh: computed on the fresh rows alone
    # the estimator's other outputs: computed for fresh rows, kept as stored for replayed ones
    gtpo = algorithms.build({"preset": "gtpo"})
    assert gtpo.replay_fields == (SEQ_ADVANTAGES,)
    with pytest.raises(ValueError, match="replayed rows carry no stored 'seq_advantages'"):
        gtpo.prepare(b)
    b.put(SEQ_ADVANTAGES, torch.where(b.replayed, torch.tensor(0.5), torch.tensor(0.0)))
    out, _ = gtpo.prepare(b)
    assert out.get(SEQ_ADVANTAGES)[6:].tolist() == [0.5] * 6
    fresh_only = gtpo.prepare(b.index(torch.arange(6)).copy())[0].get(SEQ_ADVANTAGES)
    assert torch.equal(out.get(SEQ_ADVANTAGES)[:6], fresh_only)


def test_replayed_rows_keep_pacs_labels_and_gtpo_conflicts():
    """A replayed correct answer trains as a correct one under PACS, and GTPO finds the conflict tokens of a
    replayed group: each gives the same loss gradient as the same rows prepared fresh."""
    b = random_batch(group_sizes=(4, 4), T=5, seed=3)
    b.rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    b.response_ids[:, 0] = 7  # a shared first token in every group: a conflict token of GTPO
    for preset in ("pacs", "gtpo"):
        ref, _ = algorithms.build({"preset": preset}).prepare(b)   # every row fresh
        replayed = b.copy()
        replayed.replayed = torch.tensor([False] * 4 + [True] * 4)
        replayed.advantages = ref.advantages * replayed.replayed.unsqueeze(1)  # stored at generation time
        for f in algorithms.build({"preset": preset}).replay_fields:
            replayed.put(f, ref.get(f) * replayed.replayed.to(ref.get(f).dtype))
        algo = algorithms.build({"preset": preset})
        out, _ = algo.prepare(replayed)
        for f in (BatchField.ADVANTAGES, BatchField.LOSS_WEIGHTS, *algo.replay_fields):
            assert torch.equal(out.get(f), ref.get(f)), (preset, f)
        if preset == "gtpo":
            assert torch.equal(out.token_weights, ref.token_weights) and (ref.token_weights[4:, 0] != 1).all()
        logp = current_logp(b)
        assert torch.equal(algo.loss(logp, out)[0], algo.loss(logp, ref)[0])


def test_kl_at_coefficient_zero_needs_no_reference():
    """The runtime starts a reference actor and runs its pass only when a stage reads ref_logp."""
    from algorithms import BatchField

    assert algorithms.build_driver({"preset": "grpo"}).needs(BatchField.REF_LOGP)
    off = {"preset": "grpo", "regularizer": {"name": "kl", "coef": 0.0}}
    assert not algorithms.build_driver(off).needs(BatchField.REF_LOGP)
    loss = algorithms.build_loss(off)
    assert loss.regularizer.per_token(torch.zeros(2, 3), None, None) == (None, {})


def test_tis_takes_pi_old_from_the_learner_and_refuses_a_second_behaviour_correction():
    """TIS asks the runtime for the learner's pi_old on every row (stale ones too); ReMix's objective takes its
    own ratio against the behaviour policy, so the two together would correct twice: refused."""
    assert algorithms.build_driver({"preset": "grpo", "correction": {"name": "tis"}}).old_logp_from_learner
    assert not algorithms.build_driver({"preset": "grpo"}).old_logp_from_learner
    with pytest.raises(ConfigError, match="algorithm.correction: correction 'tis' weights tokens by pi_old / "
                                          "pi_behaviour, and objective 'remix'"):
        algorithms.build({"preset": "remix", "correction": {"name": "tis"}})
    assert algorithms.build({"preset": "remix", "correction": {"name": "tis"},
                             "objective": {"behaviour": "old"}}).old_logp_from_learner
