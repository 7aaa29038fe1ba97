"""The reward_model reward on a tiny sequence-classification model built locally."""

import pytest

import rewards
from _rewards_helpers import char_tokenizer, tiny_qwen2_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from transformers import Qwen2ForSequenceClassification

    torch.manual_seed(0)
    tok = char_tokenizer()
    cfg = tiny_qwen2_config(len(tok))
    cfg.num_labels = 1
    model = Qwen2ForSequenceClassification(cfg)
    path = tmp_path_factory.mktemp("rm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_reward_model_scores(model_dir):
    rm = rewards.load("reward_model", model_path=model_dir, batch_size=2)
    comps = ["The answer is 4.", "5", "", "π ≈ 3.14 中文"]
    out = rm(["2+2="] * 4, comps)
    assert len(out) == 4 and all(isinstance(x, float) for x in out)
    again = rm(["2+2="] * 4, comps)
    assert again == pytest.approx(out, abs=1e-5)  # batching/padding does not change a score
    single = [rm(["2+2="], [c])[0] for c in comps]
    assert single == pytest.approx(out, abs=1e-4)
    conv = rm([[{"role": "user", "content": "2+2="}]], [[{"role": "assistant", "content": "4"}]])
    assert isinstance(conv[0], float)
    sig = rewards.load("reward_model", model_path=model_dir, activation="sigmoid")(["q"], ["a"])
    assert 0.0 < sig[0] < 1.0


def test_missing_model_is_fallback(tmp_path):
    rm = rewards.load("reward_model", model_path=str(tmp_path / "nope"), fallback=0.0)
    assert rm(["q", "q"], ["a", "b"]) == [0.0, 0.0]
