"""rltrain.toy: tokenizer conventions and the warm start's pure pieces (no model is trained here)."""

from __future__ import annotations

import math

import pytest

from rltrain.toy import warm_start as ws
from rltrain.toy.tiny_model import EOS_ID, PAD_ID, build_tokenizer, char_id


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_tokenizer_one_token_per_character(tok):
    ids = tok("37+48=")["input_ids"]
    assert ids == [char_id(c) for c in "37+48="]  # no special token added on encode
    assert tok("rev 1234=")["input_ids"] + tok("4321")["input_ids"] == tok("rev 1234=4321")["input_ids"]
    assert tok.eos_token_id == EOS_ID and tok.pad_token_id == PAD_ID
    assert tok.decode(ids + [EOS_ID, PAD_ID], skip_special_tokens=True) == "37+48="


def test_default_recipe_key_is_pinned():
    # the cache directory of the embedded default model; a change here rebuilds every user's model
    r = ws.default_recipe()
    assert (r.task, r.size, r.steps) == ("rev4", "tiny", 80)
    assert r.dirname() == "rev4-tiny-qwen2-615d2d5fc80ed07b"
    assert ws.default_recipe(steps=81).key() != r.key()


def test_encode_and_collate(tok):
    (ids, start), = ws._encode_examples(tok, [{"prompt": "rev 1234=", "answer": "4321"}])
    assert start == len("rev 1234=") and ids[-1] == EOS_ID and len(ids) == start + 5
    short = (tok("1+1=")["input_ids"] + tok("2")["input_ids"] + [EOS_ID], 4)
    input_ids, attn, labels = ws._collate([(ids, start), short], PAD_ID)
    assert input_ids.shape == attn.shape == labels.shape == (2, len(ids))
    assert input_ids[1, 6:].tolist() == [PAD_ID] * (len(ids) - 6) and attn[1].sum().item() == 6
    assert labels[0, :start].eq(-100).all() and labels[0, start:].tolist() == ids[start:]
    assert labels[1].tolist() == [-100] * 4 + [char_id("2"), EOS_ID] + [-100] * (len(ids) - 6)


def test_lr_schedule_warmup_then_cosine():
    r = ws.default_recipe()  # 80 steps, 30 warm-up, lr 3e-3
    lrs = [ws._lr_at(r, s) for s in range(r.steps)]
    assert lrs[0] == pytest.approx(r.lr / r.warmup_steps) and lrs[r.warmup_steps - 1] == pytest.approx(r.lr)
    assert lrs[r.warmup_steps] == pytest.approx(r.lr)
    assert all(a >= b for a, b in zip(lrs[r.warmup_steps:], lrs[r.warmup_steps + 1:]))
    assert lrs[-1] == pytest.approx(r.lr * 0.5 * (1 + math.cos(math.pi * 49 / 50)))


def test_cache_root_and_cached_model_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRAIN_CACHE", str(tmp_path))
    assert ws.cache_root() == tmp_path and ws.cache_root("/x") == ws.Path("/x")
    final = tmp_path / "models" / ws.default_recipe().dirname()
    final.mkdir(parents=True)
    for name in ("warm_start.json", "config.json", "model.safetensors"):
        (final / name).write_text("{}")
    assert ws.ensure_default_model() == final  # complete: returned as is, nothing built
