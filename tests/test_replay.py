"""The replay buffer: what goes in comes back intact (token ids, behaviour log-probs, versions, advantages),
limits hold (depth, staleness), sampling is by whole groups, and the state round-trips a checkpoint."""

from __future__ import annotations

import io

import pytest
import torch

from algorithms import RolloutBatch
from rltrain.driver.flow.replay import ReplayBuffer, replay_batch
from rltrain.workers.logprobs import pack_rows


def _prepared(step: int, version: int, groups: int = 2, group_size: int = 2, seed: int = 0) -> RolloutBatch:
    """A batch as it leaves the algorithm's prepare: advantages set, behaviour log-probs, versions."""
    g = torch.Generator().manual_seed(seed)
    n = groups * group_size
    prompts = [[3 + i // group_size, 9] for i in range(n)]
    responses = [torch.randint(10, 20, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(n)]
    p = pack_rows(prompts, responses, pad_id=0)
    mask = p["response_mask"]
    return RolloutBatch(
        response_ids=p["response_ids"], response_mask=mask, rewards=torch.arange(n, dtype=torch.float32),
        group_ids=torch.arange(groups).repeat_interleave(group_size), prompt_keys=[f"s{step}p{i // group_size}"
                                                                                  for i in range(n)],
        input_ids=p["input_ids"], attention_mask=p["attention_mask"], resp_start=p["resp_start"],
        sampling_logp=-torch.rand(n, mask.shape[1], generator=g) * mask, versions=torch.full((n,), version),
        advantages=torch.randn(n, mask.shape[1], generator=g) * mask, replayed=torch.zeros(n, dtype=torch.bool),
        step=step, max_response_len=8)


def test_samples_come_back_intact_as_whole_groups():
    buf = ReplayBuffer(depth=2, max_staleness=4)
    src = _prepared(step=1, version=0)
    assert buf.add(src) == 4 and len(buf.groups()) == 2
    out = replay_batch(buf.sample_groups(2), pad_id=0, step=2, max_response_len=8, first_group=5)
    rows = [2, 3, 0, 1]  # "recent": the newest group first -> group 1's rows, then group 0's
    assert out.prompt_keys == [src.prompt_keys[i] for i in rows]
    for j, i in enumerate(rows):
        n = int(src.response_mask[i].sum())
        assert out.response_ids[j, :n].tolist() == src.response_ids[i, :n].tolist()
        assert torch.equal(out.sampling_logp[j, :n], src.sampling_logp[i, :n])
        assert torch.equal(out.old_logp[j, :n], src.sampling_logp[i, :n])   # pi_old = the behaviour policy
        assert torch.equal(out.advantages[j, :n], src.advantages[i, :n])      # as computed at generation time
        assert out.input_ids[j, : int(out.resp_start[j])].tolist() == src.input_ids[i, : int(src.resp_start[i])].tolist()
    assert out.versions.tolist() == [0] * 4 and out.replayed.all() and out.group_ids.tolist() == [5, 5, 6, 6]


def test_replayed_rows_are_not_stored_again_and_limits_hold():
    buf = ReplayBuffer(depth=2, max_staleness=1)
    buf.add(_prepared(step=1, version=0))
    again = _prepared(step=2, version=1, seed=1)
    again.replayed = torch.tensor([False, False, True, True])
    assert buf.add(again) == 2
    buf.evict(step=2, version=1)
    assert len(buf) == 6
    buf.evict(step=3, version=2)  # depth 2 keeps steps 1-2; staleness 1 drops version 0 (step 1)
    assert {s.step for s in buf.samples} == {2} and len(buf) == 2
    buf.evict(step=3, version=3)  # version 1 is now 2 behind: evicted
    assert len(buf) == 0


def test_uniform_sampling_and_state_round_trip():
    buf = ReplayBuffer(depth=5, max_staleness=5, sampling="uniform", seed=3)
    for step in range(1, 4):
        buf.add(_prepared(step=step, version=step - 1, groups=3, seed=step))
    state = buf.state_dict()
    blob = io.BytesIO()
    torch.save(state, blob)
    blob.seek(0)
    restored = ReplayBuffer(depth=5, max_staleness=5, sampling="uniform", seed=99)
    restored.load_state_dict(torch.load(blob, weights_only=False))
    assert restored.state_dict() == state and restored.nbytes == buf.nbytes > 0
    a = [[s.prompt_key for s in grp] for grp in buf.sample_groups(4)]
    b = [[s.prompt_key for s in grp] for grp in restored.sample_groups(4)]
    assert a == b and len(a) == 4 and all(len(set(keys)) == 1 for keys in a)  # the RNG came back too
    with pytest.raises(ValueError, match="sampling"):
        ReplayBuffer(1, 1, sampling="oldest")


def test_the_critic_trains_on_the_rows_that_have_returns():
    from rltrain.driver.critic import rows_with_returns

    batch = _prepared(step=1, version=1)  # 4 rows
    assert rows_with_returns(batch) is batch  # nothing replayed: every row
    batch.replayed = torch.tensor([True, False, True, False])
    batch.returns = torch.arange(len(batch), dtype=torch.float32).view(-1, 1).expand(-1, batch.response_ids.shape[1])
    fresh = rows_with_returns(batch)  # replayed rows keep stored advantages; their returns were left at zero
    assert len(fresh) == 2 and fresh.returns[:, 0].tolist() == [1.0, 3.0]


def test_the_advantage_stages_other_outputs_come_back_with_their_rows():
    """PACS labels (one per row) and GAE returns (one per token) are stored and replayed with their rows,
    through a checkpoint's state too; a batch without a field the algorithm names is refused."""
    from algorithms import BatchField
    from algorithms.stages.advantages import LABELS

    src = _prepared(step=1, version=0)
    src.put(LABELS, torch.tensor([1.0, 0.0, 0.0, 1.0]))
    src.returns = torch.arange(src.response_mask.numel(), dtype=torch.float32).view_as(src.response_mask) * \
        src.response_mask
    fields = (LABELS, BatchField.RETURNS)
    buf = ReplayBuffer(depth=2, max_staleness=4)
    with pytest.raises(ValueError, match="has no labels"):
        buf.add(_prepared(step=1, version=0), fields)
    buf.add(src, fields)
    again = ReplayBuffer(depth=2, max_staleness=4)
    again.load_state_dict(buf.state_dict())
    out = replay_batch(again.sample_groups(2), pad_id=0, step=2, max_response_len=8, first_group=0)
    rows = [2, 3, 0, 1]  # newest group first
    assert out.get(LABELS).tolist() == [src.get(LABELS)[i].item() for i in rows]
    for j, i in enumerate(rows):
        n = int(src.response_mask[i].sum())
        assert torch.equal(out.returns[j, :n], src.returns[i, :n]) and not out.returns[j, n:].any()


def test_a_checkpoint_written_before_the_driver_rooms_loads(tmp_path):
    """Objects a checkpoint pickled under a driver module's old path (rltrain.driver.rollout, before the
    move into driver/flow) load from the new one."""
    import sys

    import torch

    from rltrain.data import PromptRow
    from rltrain.driver.flow import rollout
    from rltrain.driver.recovery import checkpoint

    record = rollout.Record(PromptRow("1+1=", "2", {}, "k"), 0, [1], [2, 3], [-0.5, -0.1], True, 4, reward=1.0)
    sys.modules["rltrain.driver.rollout"] = rollout  # the old path, as it was when the checkpoint was written
    rollout.Record.__module__ = "rltrain.driver.rollout"
    try:
        torch.save({"partial": [record]}, tmp_path / "trainer_state.pt")
    finally:
        rollout.Record.__module__ = "rltrain.driver.flow.rollout"
        del sys.modules["rltrain.driver.rollout"]
    assert b"rltrain.driver.rollout\n" in (tmp_path / "trainer_state.pt").read_bytes()  # pickled by the old path
    state = checkpoint.load(tmp_path, {})
    assert state["partial"][0] == record and type(state["partial"][0]) is rollout.Record
