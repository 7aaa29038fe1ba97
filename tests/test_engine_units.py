"""The transformers engine's lean decode (rltrain/engines/lean_decode.py) computes what `generate`
and the learner compute: same greedy tokens and log-probs, sampled log-probs equal to the
teacher-forced ones, grouped-query attention equal to attention over repeated K/V heads, and
inverse-CDF draws that follow the sampling distribution."""

from __future__ import annotations

import math

import pytest
import torch

from rltrain.engines import lean_decode
from rltrain.engines.base import SamplingConfig
from rltrain.engines.transformers_engine import TransformersEngine
from rltrain.workers.logprobs import pack_rows, response_logprobs

PROMPTS = [[3, 7, 5], [9, 4, 6, 8, 2, 3], [5]]


@pytest.fixture(scope="module")
def engines(default_model):
    return TransformersEngine(default_model, decode="lean"), TransformersEngine(default_model, decode="generate")


def test_lean_greedy_equals_generate(engines):
    lean, gen = engines
    sampling = SamplingConfig(n=1, max_new_tokens=8, greedy=True, stop_token_ids=(11,))
    a, b = lean.generate(PROMPTS, sampling), gen.generate(PROMPTS, sampling)
    assert [s.response_ids for s in a] == [s.response_ids for s in b]
    assert [s.stop_reason for s in a] == [s.stop_reason for s in b]
    for x, y in zip(a, b):
        assert x.prompt_index == y.prompt_index
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-5)


def test_lean_sampled_logprobs_equal_teacher_forced(engines):
    """Left-padded prompts decode with the positions the learner's right-padded forward uses."""
    lean, _ = engines
    samples = lean.generate(PROMPTS, SamplingConfig(n=3, max_new_tokens=8, temperature=0.8, seed=5))
    prompts = [PROMPTS[s.prompt_index] for s in samples]
    rows = pack_rows(prompts, [s.response_ids for s in samples], lean.pad_id)
    with torch.no_grad():
        logp, _ = response_logprobs(lean.model, rows["input_ids"], rows["attention_mask"], rows["resp_start"],
                                    rows["response_ids"], temperature=0.8)
    engine_lp = pack_rows(prompts, [[0] * len(s.logprobs) for s in samples], 0)["response_mask"].clone()
    for i, s in enumerate(samples):
        engine_lp[i, : len(s.logprobs)] = torch.tensor(s.logprobs)
    mask = rows["response_mask"].bool()
    assert torch.allclose(logp[mask], engine_lp[mask], atol=1e-4)
    assert len({tuple(s.response_ids) for s in samples}) > 3  # sampled, not greedy


def test_grouped_query_attention_equals_repeated_heads():
    torch.manual_seed(0)
    b, heads, kv_heads, length, d = 3, 6, 2, 5, 4
    q, k, v = torch.randn(b, heads, 1, d), torch.randn(b, kv_heads, length, d), torch.randn(b, kv_heads, length, d)
    mask = torch.ones(b, 1, 1, length, dtype=torch.bool)
    mask[0, ..., :2] = False  # left padding of row 0
    mask[2, ..., -1] = False  # a slot one row does not attend
    rep = heads // kv_heads
    out, _ = lean_decode.gqa_attention(None, q, k, v, mask, scaling=0.5)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask, scale=0.5)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-6)
    # the static cache's tail that no row has written yet is not read: NaN there would poison a product
    # that read it (0 x NaN), so a finite result equal to attention over the written slots shows it is skipped
    written = 3
    k_tail, v_tail, m_tail = k.clone(), v.clone(), mask.clone()
    k_tail[:, :, written:], v_tail[:, :, written:], m_tail[..., written:] = float("nan"), float("nan"), False
    out, _ = lean_decode.gqa_attention(None, q, k_tail, v_tail, m_tail, scaling=0.5, lean_written_slots=written)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k[:, :, :written].repeat_interleave(rep, 1), v[:, :, :written].repeat_interleave(rep, 1),
        attn_mask=mask[..., :written], scale=0.5)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-6)


def test_inverse_cdf_draws_follow_the_distribution():
    # probabilities 1/4, 0, 3/4 at temperature 1: token 1 is never drawn, log-probs are log(1/4), log(3/4)
    logits = torch.tensor([[0.0, -math.inf, math.log(3.0)]]).expand(4000, 3)
    gen = torch.Generator().manual_seed(0)
    tok, lp = lean_decode.pick_tokens(logits, 1.0, False, torch.rand(4000, 1, generator=gen))
    assert not (tok == 1).any()
    assert abs(float((tok == 2).float().mean()) - 0.75) < 0.03
    assert torch.allclose(lp[tok == 0], torch.tensor(math.log(0.25)))
    assert torch.allclose(lp[tok == 2], torch.tensor(math.log(0.75)))
    # temperature 2 halves the logits: probabilities 1/(1+sqrt 3), sqrt 3/(1+sqrt 3)
    tok, lp = lean_decode.pick_tokens(logits, 2.0, False, torch.rand(4000, 1, generator=gen))
    assert torch.allclose(lp[tok == 2], torch.tensor(math.log(math.sqrt(3) / (1 + math.sqrt(3)))))
    # greedy: the argmax, with its log-prob under softmax(logits)
    tok, lp = lean_decode.pick_tokens(logits[:2], 1.0, True, None)
    assert tok.tolist() == [2, 2] and torch.allclose(lp, torch.tensor(math.log(0.75)))


def test_compaction_and_shared_prefill_sample_what_the_full_batch_samples(engines):
    """Stopped rows leaving the batch and a group's prompt prefilled once change no row's tokens: every
    row draws the random numbers it would in the full batch. Reference: the same loop that never
    compacts, on rows given as distinct prompts (a copy of the prompt with a different first token
    makes no row share; the rows compared share theirs)."""
    lean, _ = engines
    rows = [p for p in PROMPTS for _ in range(4)]
    kw = dict(max_new_tokens=12, temperature=1.0, greedy=False, stop_ids=[lean.eos_id, 11], pad_id=lean.pad_id, seed=3)
    tok, lp = lean_decode.sample(lean.model, rows, **kw)
    full_tok, full_lp = lean_decode.sample(lean.model, rows, compact_fraction=math.inf, **kw)
    stopped_early = ((tok == lean.pad_id).sum(-1) > 0) & ((tok == 11) | (tok == lean.eos_id)).any(-1)
    assert 0 < int(stopped_early.sum()) < len(rows)  # rows stopped at different steps: compaction ran
    assert torch.equal(tok, full_tok)
    assert torch.allclose(lp, full_lp, atol=1e-5)
    # the shared prefill: each row alone (a batch of one, its own prefill) samples other numbers, so
    # compare log-probs under teacher forcing instead (test above) and greedy tokens row by row here
    greedy = dict(kw, greedy=True)
    batch_tok, _ = lean_decode.sample(lean.model, rows, **greedy)
    for i, r in enumerate(rows[::4]):
        alone, _ = lean_decode.sample(lean.model, [r], **greedy)
        n = alone.shape[1]
        assert batch_tok[4 * i, :n].tolist() == alone[0].tolist()
        assert (batch_tok[4 * i + 1: 4 * i + 4, :n] == alone[0]).all()


def test_lean_decode_refuses_top_p(engines):
    with pytest.raises(ValueError, match="top_p"):
        engines[0].generate(PROMPTS, SamplingConfig(n=1, max_new_tokens=2, top_p=0.9))
