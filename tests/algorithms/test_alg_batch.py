"""RolloutBatch.index / cat / to."""

import pytest
import torch

from algorithms import RolloutBatch
from alg_helpers import random_batch


def test_index_slices_every_row_field_and_extra():
    b = random_batch()
    b.extra["per_row"] = torch.arange(12)
    b.extra["per_tok"] = torch.arange(12 * 7).view(12, 7)
    for idx in (torch.tensor([4, 1]), [4, 1], torch.tensor([i in (1, 4) for i in range(12)])):
        s = b.index(idx)
        rows = sorted([4, 1]) if isinstance(idx, torch.Tensor) and idx.dtype == torch.bool else [4, 1]
        assert len(s) == 2 and s.step == b.step and s.pad_id == b.pad_id
        assert torch.equal(s.response_ids, b.response_ids[rows])
        assert torch.equal(s.old_logp, b.old_logp[rows])
        assert torch.equal(s.extra["per_row"], torch.tensor(rows))
        assert torch.equal(s.extra["per_tok"], b.extra["per_tok"][rows])
        assert s.prompt_keys == [b.prompt_keys[i] for i in rows]
        assert s.ref_logp is not None and s.token_rewards is None


def test_cat_inverts_index():
    b = random_batch()
    b.extra["per_row"] = torch.arange(12)
    back = RolloutBatch.cat([b.index(torch.arange(0, 5)), b.index(torch.arange(5, 12))])
    assert torch.equal(back.response_mask, b.response_mask) and torch.equal(back.extra["per_row"], b.extra["per_row"])
    assert back.prompt_keys == b.prompt_keys
    other = b.index([0])
    other.ref_logp = None
    with pytest.raises(ValueError, match="ref_logp"):
        RolloutBatch.cat([b.index([1]), other])


def test_index_rejects_bad_extra():
    b = random_batch()
    b.extra["wrong"] = torch.zeros(3)
    with pytest.raises(ValueError, match="wrong"):
        b.index([0])
