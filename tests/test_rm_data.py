"""Preference data for reward-model training: the built-in pairs, files (text and chat), bad rows,
the rendering the `reward_model` reward uses, and rank shards that keep the step's mean."""

import json

import pytest
import torch

from rltrain.config.rm import load_rm
from rltrain.data.datasets import DataError
from rltrain.data.tasks import is_correct
from rltrain.rm.preferences import REJECTION_KINDS, builtin_pairs, load_pairs
from rltrain.rm.train import pairwise_metrics, rank_shards, render
from rltrain.workers.reward_model_learner import PairBatch


def test_builtin_pairs_prefer_the_truth():
    pairs = builtin_pairs("rev4", "train", 30)
    assert [p.kind for p in pairs[:3]] == list(REJECTION_KINDS)
    for p in pairs:
        digits = p.prompt[len("rev "):-1]
        assert p.chosen == digits[::-1] and p.rejected != p.chosen
        assert not is_correct(p.rejected, p.chosen) or p.kind == "rambling"
        if p.kind == "rambling":
            assert p.rejected.startswith(p.chosen + " ") and len(p.rejected) > len(p.chosen)
    test_prompts = {p.prompt for p in builtin_pairs("rev4", "test", 30)}
    assert not test_prompts & {p.prompt for p in pairs}
    assert builtin_pairs("rev4", "train", 30) == pairs  # deterministic


def test_pair_files_text_and_chat_and_bad_rows(tmp_path):
    rows = [{"prompt": "2+2=", "chosen": "4", "rejected": "5"},
            {"prompt": [{"role": "user", "content": "2+3?"}], "chosen": [{"role": "assistant", "content": "5"}],
             "rejected": [{"role": "assistant", "content": "6"}]}]
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = load_pairs(str(path))
    assert pairs[0].chosen == "4" and pairs[1].prompt[0]["content"] == "2+3?"
    assert render(None, pairs[1].prompt, pairs[1].chosen) == "2+3?\n5"  # no chat template: joined lines
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "x", "chosen": "y"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing column\(s\) \['rejected'\]"):
        load_pairs(str(bad))
    bad.write_text(json.dumps({"prompt": "x", "chosen": "", "rejected": "z"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: column 'chosen' must be non-empty"):
        load_pairs(str(bad))


def test_rank_shards_pad_with_zero_weight_and_equal_cuts():
    n = 5
    batch = PairBatch(torch.arange(n).view(n, 1), torch.ones(n, 1), torch.arange(n).view(n, 1), torch.ones(n, 1),
                      torch.full((n,), 1 / n))
    shards = rank_shards(batch, ranks=2, micro=2)
    assert [len(s) for s, _ in shards] == [3, 3] and [c for _, c in shards] == [[0, 2, 3], [0, 2, 3]]
    weights = torch.cat([s.weights for s, _ in shards])
    assert weights.sum().item() == pytest.approx(1.0) and weights[-1] == 0  # the padding pair counts for nothing


def test_pairwise_metrics_by_hand_and_config_errors():
    m = pairwise_metrics(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 0.5]), ["a", "a", "b"])
    assert m["rm/accuracy"] == pytest.approx(2 / 3) and m["rm/margin_mean"] == pytest.approx(0.5 / 3)
    assert m["rm/accuracy_a"] == 0.5 and m["rm/accuracy_b"] == 1.0
    from rltrain.config import ConfigError

    with pytest.raises(ConfigError, match="train.stepz"):
        load_rm(None, {"train.stepz": 3})


def test_each_step_draws_pairs_per_step_pairs_an_epoch_at_a_time():
    """`_next_pairs` without actors: the sampler alone (RewardModelTrainer's state, set by hand)."""
    from rltrain.rm.train import RewardModelTrainer

    n = 10
    sampler = RewardModelTrainer.__new__(RewardModelTrainer)
    sampler.cfg = load_rm(None, {"train.pairs_per_step": 4})
    sampler.train = PairBatch(torch.arange(n).view(n, 1), torch.ones(n, 1), torch.arange(n).view(n, 1),
                              torch.ones(n, 1), torch.ones(n))
    sampler.gen = torch.Generator().manual_seed(0)
    sampler.order, sampler.cursor = torch.randperm(n, generator=sampler.gen), 0
    drawn = [sampler._next_pairs() for _ in range(5)]  # 20 pairs: two epochs of 10
    assert [len(b) for b in drawn] == [4] * 5
    assert all(b.weights.sum().item() == pytest.approx(1.0) for b in drawn)
    first_epoch = torch.cat([b.chosen_ids.view(-1) for b in drawn])[:8].tolist() + drawn[2].chosen_ids.view(-1)[:2].tolist()
    assert sorted(first_epoch) == list(range(n))  # the first 10 drawn are one permutation
