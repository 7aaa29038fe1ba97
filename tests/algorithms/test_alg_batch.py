"""RolloutBatch.index / cat / to, and the declared field list."""

import dataclasses

import pytest
import torch

from algorithms import BatchField, RolloutBatch, StageField
from algorithms.stages.advantages import LABELS
from alg_helpers import random_batch


def test_index_slices_every_row_field():
    b = random_batch()
    b.put(LABELS, torch.arange(12))
    b.token_weights = torch.arange(12 * 7).view(12, 7).float()
    for idx in (torch.tensor([4, 1]), [4, 1], torch.tensor([i in (1, 4) for i in range(12)])):
        s = b.index(idx)
        rows = sorted([4, 1]) if isinstance(idx, torch.Tensor) and idx.dtype == torch.bool else [4, 1]
        assert len(s) == 2 and s.step == b.step and s.pad_id == b.pad_id
        assert torch.equal(s.response_ids, b.response_ids[rows])
        assert torch.equal(s.old_logp, b.old_logp[rows])
        assert torch.equal(s.get(LABELS), torch.tensor(rows))
        assert torch.equal(s.token_weights, b.token_weights[rows])
        assert s.prompt_keys == [b.prompt_keys[i] for i in rows]
        assert s.ref_logp is not None and s.teacher_ids is None  # unset fields stay unset


def test_cat_inverts_index():
    b = random_batch()
    b.put(LABELS, torch.arange(12))
    back = RolloutBatch.cat([b.index(torch.arange(0, 5)), b.index(torch.arange(5, 12))])
    assert torch.equal(back.response_mask, b.response_mask) and torch.equal(back.get(LABELS), b.get(LABELS))
    assert back.prompt_keys == b.prompt_keys
    other = b.index([0])
    other.ref_logp = None
    with pytest.raises(ValueError, match="ref_logp"):
        RolloutBatch.cat([b.index([1]), other])


def test_index_rejects_a_field_with_the_wrong_row_count():
    b = random_batch()
    b.advantages = torch.zeros(3, 7)
    with pytest.raises(ValueError, match="advantages"):
        b.index([0])
    b = random_batch()
    b.stage_fields["labels"] = torch.zeros(3)  # (bypassing put's shape check)
    with pytest.raises(ValueError, match="labels"):
        b.index([0])


def test_every_batch_field_is_a_declared_field():
    names = {f.name for f in dataclasses.fields(RolloutBatch)} - {"pad_id", "step", "max_response_len", "stage_fields"}
    assert names == {f.value for f in BatchField}
    with pytest.raises(AttributeError):
        random_batch().extra = torch.zeros(12)  # slotted: nothing travels under an undeclared name


def test_stage_fields_are_declared_shaped_and_travel_with_their_rows():
    """A stage field is set only through `put`, with its declared shape; it is sliced, padded, concatenated
    and copied like a core field; a name cannot be declared twice differently or shadow a core field."""
    b = random_batch()                                     # 12 rows x 7 tokens
    with pytest.raises(ValueError, match=r"'labels' takes \(N,\) values for 12 rows, got shape \(12, 7\)"):
        b.put(LABELS, torch.zeros(12, 7))
    undeclared = object.__new__(StageField)
    object.__setattr__(undeclared, "value", "never_declared")
    object.__setattr__(undeclared, "per_token", False)
    object.__setattr__(undeclared, "doc", "")
    with pytest.raises(ValueError, match="'never_declared' is not declared"):
        b.put(undeclared, torch.zeros(12))
    with pytest.raises(ValueError, match="would shadow a core batch field"):
        StageField("advantages", per_token=True)
    with pytest.raises(ValueError, match="'labels' is declared twice, differently"):
        StageField("labels", per_token=True)
    per_tok = StageField("test_token_scores", per_token=True, doc="a per-token stage field of this test")
    b.put(per_tok, torch.arange(12 * 7, dtype=torch.float32).view(12, 7))
    b.put(LABELS, torch.arange(12.0))
    wide = b.padded(9, 0)
    assert wide.get(per_tok).shape == (12, 9) and not wide.get(per_tok)[:, 7:].any()
    assert torch.equal(wide.get(LABELS), b.get(LABELS))
    assert b.to("meta").get(per_tok).device.type == "meta" and b.to("meta").get(LABELS).device.type == "meta"
    import pickle

    back = pickle.loads(pickle.dumps(b))  # how a batch reaches a Ray actor
    assert torch.equal(back.get(LABELS), b.get(LABELS)) and torch.equal(back.get(per_tok), b.get(per_tok))
    c = b.copy()
    c.put(LABELS, torch.zeros(12))
    assert b.get(LABELS).sum() == 66  # a copy owns its stage fields
    other = b.index([0])
    other.stage_fields.pop("labels")
    with pytest.raises(ValueError, match="stage field.*labels set in some batches only"):
        RolloutBatch.cat([b.index([1]), other])
