"""The critic's value model, built from a causal LM (zero head) or from a reward model (its head)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rltrain.workers.critic import build_value_model


def _reward_model(src: str, out, num_labels: int = 1):
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(src, num_labels=num_labels, dtype=torch.float32)
    rm.config.pad_token_id = 0
    torch.nn.init.normal_(rm.score.weight, std=0.5)  # a head that is not zero, so copying it shows
    rm.save_pretrained(out)
    return rm.eval()


def test_value_model_from_a_causal_lm_starts_at_zero(default_model):
    model = build_value_model(default_model)
    ids = torch.tensor([[20, 21, 22, 23]])
    assert torch.count_nonzero(model(ids, torch.ones_like(ids))) == 0


def test_value_model_from_a_reward_model_scores_as_the_reward_model(default_model, tmp_path):
    rm = _reward_model(default_model, tmp_path / "rm")
    model = build_value_model(str(tmp_path / "rm")).eval()
    ids = torch.tensor([[20, 21, 22, 23, 24], [25, 26, 27, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        values = model(ids, mask)
        scores = rm(input_ids=ids, attention_mask=mask).logits.squeeze(-1)  # read at each row's last token
    last = mask.sum(1) - 1
    assert torch.allclose(values[torch.arange(2), last], scores, atol=1e-5)
    assert values.abs().sum() > 0


def test_value_model_refuses_a_classifier_with_two_outputs(default_model, tmp_path):
    _reward_model(default_model, tmp_path / "cls", num_labels=2)
    with pytest.raises(ValueError, match="one output"):
        build_value_model(str(tmp_path / "cls"))
