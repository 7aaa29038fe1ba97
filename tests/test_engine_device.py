"""The transformers engine on a torch device (issue #28, finding 3; rltrain/engines/device.py,
transformers_engine.py, lean_decode.py): the device is decided by one function, CUDA asked for without
CUDA is an error, the model and every tensor a call builds are placed on the engine's device, results
come back as the host lists of one copy, and decoding gives what the model's distribution and the
seed's random stream give (computed here without the engine's cache, compaction or attention).

This machine has no GPU: the CUDA placement itself is checked by launch/bench/device_check.py on one.
Here, a call run with `torch.device("meta")` as the default device proves that nothing in it is
created on the default device (anything created without an explicit device would be a meta tensor
and the call would fail).
"""

from __future__ import annotations

import pytest
import torch

from rltrain.engines.base import SamplingConfig
from rltrain.engines.device import resolve_device, results_to_host
from rltrain.engines.transformers_engine import TransformersEngine

PROMPTS = [[3, 7, 5], [9, 4, 6, 8, 2, 3], [5]]
STOP = 11


def test_resolve_device_default_follows_the_visible_cuda_devices():
    assert resolve_device(None, cuda_devices=0) == torch.device("cpu")
    assert resolve_device(None, cuda_devices=2) == torch.device("cuda", 0)  # the first visible one, with its index
    assert resolve_device("cpu", cuda_devices=2) == torch.device("cpu")
    assert resolve_device("cuda", cuda_devices=1) == torch.device("cuda", 0)
    assert resolve_device("cuda:1", cuda_devices=2) == torch.device("cuda", 1)
    # this process: the default is what it sees
    expected = torch.device("cuda", 0) if torch.cuda.device_count() > 0 else torch.device("cpu")
    assert resolve_device() == expected


def test_resolve_device_never_falls_back_to_cpu():
    with pytest.raises(RuntimeError, match="sees no CUDA device.*no fallback to the CPU"):
        resolve_device("cuda", cuda_devices=0)
    with pytest.raises(RuntimeError, match="sees 2 CUDA device"):
        resolve_device("cuda:2", cuda_devices=2)
    with pytest.raises(ValueError, match="'cpu' or 'cuda"):
        resolve_device("meta", cuda_devices=1)
    with pytest.raises(ValueError, match="not a torch device name"):
        resolve_device("gpu0", cuda_devices=1)


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="checks the refusal where no CUDA device is visible")
def test_engine_asked_for_cuda_without_cuda_raises(default_model):
    with pytest.raises(RuntimeError, match="no fallback to the CPU"):
        TransformersEngine(default_model, device="cuda")


def test_results_to_host_is_exact():
    # token ids beyond float32's exact range and float32 log-probs survive the float64 copy unchanged
    tokens = torch.tensor([[151645, 0, 16_777_217], [2, 3, 4]])
    logps = torch.tensor([[-0.5, -0.25, -1.125], [-3.0, -0.0625, 0.0]], dtype=torch.float32)
    ids, lps = results_to_host(tokens, logps)
    assert ids == [[151645, 0, 16_777_217], [2, 3, 4]]
    assert lps == [[-0.5, -0.25, -1.125], [-3.0, -0.0625, 0.0]]
    assert all(type(x) is int for x in ids[0]) and all(type(x) is float for x in lps[0])
    third = torch.tensor([[-1 / 3]], dtype=torch.float32)  # not exact in binary: the float32 value comes back
    assert results_to_host(torch.tensor([[1]]), third)[1] == [[float(third[0, 0])]]


@pytest.fixture(scope="module", params=["lean", "generate"])
def engine(request, default_model):
    return TransformersEngine(default_model, decode=request.param)


def _outputs(samples) -> list:
    return [(s.prompt_index, s.response_ids, s.logprobs, s.stop_reason) for s in samples]


def test_engine_model_and_call_tensors_live_on_its_device(engine):
    assert engine.device == resolve_device()
    assert {p.device for p in engine.model.parameters()} == {engine.device}
    assert {b.device for b in engine.model.buffers()} <= {engine.device}
    for sampling in (SamplingConfig(n=2, max_new_tokens=10, temperature=0.9, seed=3, stop_token_ids=(STOP,)),
                     SamplingConfig(n=1, max_new_tokens=10, greedy=True)):
        ref = engine.generate(PROMPTS, sampling)
        with torch.device("meta"):  # a tensor made without an explicit device would be a meta tensor here
            got = engine.generate(PROMPTS, sampling)
        assert _outputs(got) == _outputs(ref)


def test_memory_restored_and_shared_weights_on_the_engine_device(default_model):
    engine = TransformersEngine(default_model, dtype="bfloat16")
    learner = {n: p.detach().float() + 0.5 for n, p in engine.model.named_parameters(remove_duplicate=False)}
    with torch.device("meta"):  # storage allocated without naming the engine's device would land on meta
        engine.free_memory()
        engine.restore_memory()
    assert {(p.device, p.dtype) for p in engine.model.parameters()} == {(engine.device, torch.bfloat16)}
    with torch.device("meta"):
        engine.free_memory()  # freed, then fed float32 tensors: allocated again on the engine's device, in bf16
        copied = engine.share_weights(learner.items())
    for name, p in engine.model.named_parameters():
        assert (p.device, p.dtype) == (engine.device, torch.bfloat16)
        assert torch.equal(p, learner[name].to(torch.bfloat16))
    assert copied == sum(t.numel() * 2 for t in learner.values())  # every tensor copied once, 2 bytes each
    # same dtype on the engine's device: the engine adopts the storage and copies nothing
    same = TransformersEngine(default_model)
    clones: dict[int, torch.Tensor] = {}  # the learner's tied names share one tensor, as the engine's do
    given = {n: clones.setdefault(id(p), p.detach().clone())
             for n, p in same.model.named_parameters(remove_duplicate=False)}
    assert same.share_weights(given.items()) == 0
    assert all(p.data_ptr() == given[n].data_ptr() for n, p in same.model.named_parameters())


def _reference_decode(model, prompts, n, max_new, temperature, greedy, seed, stops):
    """Each row alone, its whole sequence through the model at every step (no cache, no padding, no
    compaction); sampled rows draw by inverse CDF the number the engine's generator gives that row at
    that step (one (rows, 1) draw per step on the device's generator seeded with `seed`)."""
    rows = [p for p in prompts for _ in range(n)]
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    uniforms = [torch.rand((len(rows), 1), generator=gen, device=gen.device) for _ in range(max_new)]
    out = []
    for i, row in enumerate(rows):
        seq, toks, lps = list(row), [], []
        for t in range(max_new):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
            if greedy:
                logp = logits.log_softmax(-1)
                tok = int(logp.argmax())
            else:
                logp = (logits / temperature).log_softmax(-1)
                cdf = logp.exp().cumsum(-1)
                tok = int(torch.searchsorted(cdf, uniforms[t][i] * cdf[-1], right=True))
            toks.append(tok)
            lps.append(float(logp[tok]))
            seq.append(tok)
            if tok in stops:
                break
        out.append((toks, lps))
    return out


@pytest.mark.parametrize("greedy", [False, True])
def test_lean_decode_gives_the_models_tokens_for_the_seed(default_model, greedy):
    engine = TransformersEngine(default_model, decode="lean")
    n, max_new, temperature, seed = 3, 12, 0.9, 5
    sampling = SamplingConfig(n=n, max_new_tokens=max_new, temperature=temperature, greedy=greedy, seed=seed,
                              stop_token_ids=(STOP,))
    samples = engine.generate(PROMPTS, sampling)
    ref = _reference_decode(engine.model, PROMPTS, n, max_new, temperature, greedy, seed, {engine.eos_id, STOP})
    assert [s.response_ids for s in samples] == [toks for toks, _ in ref]
    for s, (_, lps) in zip(samples, ref):
        assert s.logprobs == pytest.approx(lps, abs=1e-5)
    if not greedy:  # rows stopped at different steps (the compaction ran) and were really sampled
        assert len({len(s.response_ids) for s in samples}) > 1 and len({tuple(s.response_ids) for s in samples}) > 3
