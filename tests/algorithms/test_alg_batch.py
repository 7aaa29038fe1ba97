"""RolloutBatch.index / cat / to, and the declared field list."""

import dataclasses

import pytest
import torch

from algorithms import BatchField, RolloutBatch
from alg_helpers import random_batch


def test_index_slices_every_row_field():
    b = random_batch()
    b.labels = torch.arange(12)
    b.token_weights = torch.arange(12 * 7).view(12, 7).float()
    for idx in (torch.tensor([4, 1]), [4, 1], torch.tensor([i in (1, 4) for i in range(12)])):
        s = b.index(idx)
        rows = sorted([4, 1]) if isinstance(idx, torch.Tensor) and idx.dtype == torch.bool else [4, 1]
        assert len(s) == 2 and s.step == b.step and s.pad_id == b.pad_id
        assert torch.equal(s.response_ids, b.response_ids[rows])
        assert torch.equal(s.old_logp, b.old_logp[rows])
        assert torch.equal(s.labels, torch.tensor(rows))
        assert torch.equal(s.token_weights, b.token_weights[rows])
        assert s.prompt_keys == [b.prompt_keys[i] for i in rows]
        assert s.ref_logp is not None and s.teacher_ids is None  # unset fields stay unset


def test_cat_inverts_index():
    b = random_batch()
    b.labels = torch.arange(12)
    back = RolloutBatch.cat([b.index(torch.arange(0, 5)), b.index(torch.arange(5, 12))])
    assert torch.equal(back.response_mask, b.response_mask) and torch.equal(back.labels, b.labels)
    assert back.prompt_keys == b.prompt_keys
    other = b.index([0])
    other.ref_logp = None
    with pytest.raises(ValueError, match="ref_logp"):
        RolloutBatch.cat([b.index([1]), other])


def test_index_rejects_a_field_with_the_wrong_row_count():
    b = random_batch()
    b.labels = torch.zeros(3)
    with pytest.raises(ValueError, match="labels"):
        b.index([0])


def test_every_batch_field_is_a_declared_field():
    names = {f.name for f in dataclasses.fields(RolloutBatch)} - {"pad_id", "step", "max_response_len"}
    assert names == {f.value for f in BatchField}
    assert not hasattr(random_batch(), "extra")  # nothing travels in an untyped dict
