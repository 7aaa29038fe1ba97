"""SFT's data path without Ray: the loss mask from the text each example renders to (plain text and chat
template, tokenized once), rows and packing, the step's loss weights, data sources (files and a Hugging
Face dataset directory), and a packed row computing what its examples do alone."""

from __future__ import annotations

import json

import pytest
import torch

from rltrain.data.datasets import DataError
from rltrain.data.sources import iter_records
from rltrain.sft.batches import pack, rank_shards, to_rows
from rltrain.sft.data import Example, encode, to_example

# a chat template in the ChatML style, simple enough to check by hand
CHATML = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tok(default_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model)


def test_plain_text_learns_the_completion_and_the_end_of_sequence(tok):
    ids, mask = encode(tok, Example("r", "rev 2034=", "4302"), max_length=64)
    assert tok.decode(ids[:-1]) == "rev 2034=4302" and ids[-1] == tok.eos_token_id  # one char a token
    assert mask == [0] * 9 + [1] * 4 + [1]
    assert encode(tok, Example("r", "rev 2034=", "4302"), max_length=11) == (ids[:11], mask[:11])


def test_chat_marks_every_assistant_message_and_its_end_marker(tok):
    tok = tok.__class__.from_pretrained(tok.name_or_path)
    tok.chat_template = CHATML
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    ids, mask = encode(tok, Example("c", messages=msgs), max_length=512)
    assert tok.decode(ids) == "<|user|>q1<|end|><|assistant|>a1<|end|><|user|>q2<|end|><|assistant|>a2<|end|>"
    learned = "".join(tok.decode([i]) for i, m in zip(ids, mask) if m)
    assert learned == "a1<|end|>a2<|end|>"  # the content and the turn's end, not the role headers
    # a prompt / completion pair in messages learns the completion only
    ids, mask = encode(tok, Example("p", prompt=msgs[:3], completion=msgs[3:]), max_length=512)
    assert "".join(tok.decode([i]) for i, m in zip(ids, mask) if m) == "a2<|end|>"
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{{ messages|length }}{% endfor %}"
    with pytest.raises(DataError, match="^c: the chat template renders message 1 differently"):
        encode(tok, Example("c", messages=msgs), max_length=512)


def test_rows_name_their_problems():
    assert to_example("f:3", {"prompt": "p", "completion": "c"}, "prompt", "completion", "messages").completion == "c"
    with pytest.raises(DataError, match=r"^f:3: missing 'completion' \(or a 'messages' column\); columns: prompt"):
        to_example("f:3", {"prompt": "p"}, "prompt", "completion", "messages")
    with pytest.raises(DataError, match="^d\\[0\\]: 'messages' has no assistant message"):
        to_example("d[0]", {"messages": [{"role": "user", "content": "x"}]}, "prompt", "completion", "messages")


def test_rows_packing_and_weights():
    a, b, c = ([1, 2, 3], [0, 1, 1]), ([4, 5], [0, 1]), ([6, 7, 8, 9], [0, 0, 1, 1])
    assert [len(g) for g in pack([a, b, c], max_length=5)] == [2, 1]  # 3 + 2 fit, 4 starts a row
    rows = to_rows([a, b, c], pad_id=0, max_length=5, packing=True)
    assert rows.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]  # restarting per example
    assert rows.loss_mask.tolist() == [[0, 1, 1, 0, 1], [0, 0, 1, 1, 0]]  # never an example's first token
    assert rows.weights.sum().item() == pytest.approx(1.0) and rows.weights.max().item() == pytest.approx(1 / 5)
    flat = to_rows([a, b, c], pad_id=0, max_length=5, packing=False)
    assert flat.input_ids.shape == (3, 4) and flat.loss_mask.sum() == rows.loss_mask.sum()
    shards = rank_shards(flat, ranks=2, micro=1)
    assert [len(s) for s, _ in shards] == [2, 2] and shards[1][0].weights[1].sum() == 0  # a zero-weight filler
    assert shards[0][1] == [0, 1, 2]


def test_sources_read_files_and_a_saved_dataset(tmp_path):
    import datasets

    rows = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "d.csv").write_text("prompt,completion\np1,c1\np2,c2\n")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for src in ("d.jsonl", "d.csv", "saved"):
        assert [r for _, r in iter_records(str(tmp_path / src))] == rows, src
    assert [lbl for lbl, _ in iter_records(str(tmp_path / "d.jsonl"))] == [f"{tmp_path}/d.jsonl:1", f"{tmp_path}/d.jsonl:2"]
    assert [lbl for lbl, _ in iter_records(datasets.Dataset.from_list(rows))] == ["dataset[0]", "dataset[1]"]
    with pytest.raises(DataError, match="no such file or directory"):
        list(iter_records(str(tmp_path / "gone.jsonl")))


def test_a_packed_row_computes_what_its_examples_do_alone(default_model):
    from transformers import AutoModelForCausalLM

    from rltrain.workers.sft_learner import token_logprobs

    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    examples = [(torch.randint(3, 60, (n,), generator=g).tolist(), [0] + [1] * (n - 1)) for n in (5, 7, 4, 6)]
    with torch.no_grad():
        alone, _ = token_logprobs(model, to_rows(examples, 0, 32, packing=False), packed=False)
        together, where = token_logprobs(model, to_rows(examples, 0, 12, packing=True), packed=True)
    assert len(where[0]) == sum(len(ids) - 1 for ids, _ in examples) == len(alone)
    assert torch.allclose(alone, together, atol=1e-5), (alone - together).abs().max()


def test_token_budget_micro_batches_cut_by_padded_tokens_and_keep_equal_counts():
    ex = [([1] * n, [0] + [1] * (n - 1)) for n in (6, 2, 5, 3, 2)]
    batch = to_rows(ex, pad_id=0, max_length=8, packing=False)
    # rank 0 holds lengths 6, 2, 5: longest first, 6 | 5, 2 (2 rows x 6 = 12 > 10 tokens; 2 x 5 = 10 fits);
    # rank 1 holds 3, 2 and a zero-weight filler (a copy of row 0, length 6): 6 | 3, 2. Equal counts here.
    shards = rank_shards(batch, ranks=2, micro=4, max_tokens=10)
    assert [cuts for _, cuts in shards] == [[0, 1, 3], [0, 1, 3]]
    assert shards[0][0].attention_mask.sum(-1).tolist() == [6, 5, 2]
    # a rank with fewer micro-batches gets one-row zero-weight fillers: rank 0 holds 6 | 5, rank 1 holds 2, 2
    four = [([1] * n, [0] + [1] * (n - 1)) for n in (6, 5, 2, 2)]
    (r0, cuts0), (r1, cuts1) = rank_shards(to_rows(four, pad_id=0, max_length=8, packing=False), 2, 4, max_tokens=10)
    assert cuts0 == [0, 1, 2] and cuts1 == [0, 2, 3]
    assert r1.weights[2].sum() == 0 and r1.weights[:2].sum() > 0
    (s0, c0), (s1, c1) = shards
    assert len(c0) == len(c1)  # the same number of accumulation steps on every rank
    for shard, cuts in shards:
        for a, b in zip(cuts[:-1], cuts[1:]):
            rows = shard.attention_mask[a:b].sum(-1)
            assert b - a == 1 or (b - a) * int(rows.max()) <= 10
    total = s0.weights.sum() + s1.weights.sum()
    assert total.item() == pytest.approx(1.0)  # fillers weigh nothing


def test_micro_batches_ranks_and_token_budgets_keep_the_step_loss_and_gradient(default_model):
    from transformers import AutoModelForCausalLM

    from rltrain.workers.sft_learner import token_logprobs

    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    examples = [(torch.randint(3, 60, (n,), generator=g).tolist(), [0, 0] + [1] * (n - 2)) for n in (9, 4, 7, 5, 3, 8)]
    batch = to_rows(examples, pad_id=0, max_length=16, packing=False)

    def step(ranks: int, micro: int, max_tokens: int) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss_sum = 0.0
        for shard, cuts in rank_shards(batch, ranks, micro, max_tokens):
            for a, b in zip(cuts[:-1], cuts[1:]):
                mb = shard.index(slice(a, b))
                logp, where = token_logprobs(model, mb, packed=False)
                loss = -(logp * mb.weights[where]).sum()
                loss.backward()
                loss_sum += loss.item()
        return loss_sum, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()

    whole_loss, whole_grad = step(1, 64, 0)
    for ranks, micro, max_tokens in ((2, 1, 0), (3, 2, 0), (2, 4, 20), (1, 64, 12)):
        loss, grad = step(ranks, micro, max_tokens)
        assert loss == pytest.approx(whole_loss, rel=1e-5), (ranks, micro, max_tokens)
        assert torch.allclose(grad, whole_grad, atol=1e-6, rtol=1e-4), (ranks, micro, max_tokens)


def test_sft_refuses_learner_keys_it_would_ignore():
    from rltrain.config.loader import ConfigError
    from rltrain.config.sft import load_sft

    for key in ("learner.mini_batches", "learner.epochs"):
        with pytest.raises(ConfigError, match="one optimizer step per train.examples_per_step"):
            load_sft(None, {key: 2})
    assert load_sft(None, {"learner.max_tokens_per_micro_batch": 512}).learner.max_tokens_per_micro_batch == 512
