"""Device check (issue #28, "The production path on GPUs"): the parts of the GPU path that need only
torch and transformers, measured on one CUDA device. Not a test; writes a JSON of figures.

    python launch/bench/device_check.py                 # a CUDA machine: docs/gpu.json (minutes on one H100)
    python launch/bench/device_check.py --smoke [--out PATH]   # the same parts on the CPU at toy sizes

Parts (each records its figures and seconds; a part that fails records its error, the script goes on
and exits 1 at the end):
  engine_decode      the transformers engine on the device (rltrain/engines): parameters on the device,
                     greedy lean decode vs transformers `generate` (fp32) and vs the CPU, the same seed
                     giving the same tokens twice, bf16 sampled decode tokens/s of both decode paths,
                     device -> host syncs per decode step (CUDA's sync debug mode), peak memory;
  learner_precision  the learner's math (response_logprobs + the grpo loss, gradients summed over
                     micro-batches in fp32 as DeepSpeed does) in bf16 vs fp32: gradient cosine, relative
                     distance and sign agreement; micro-batch invariance (whole batch vs uneven
                     micro-batches) in each precision; the per-token log-prob gap;
  train_throughput   forward + backward tokens/s and peak memory of a micro-batch, bf16 and fp32 weights
                     (no optimizer state);
  presets            every algorithms.PRESETS preset (forking, an overlay, as dapo+forking): the driver
                     part prepares a synthetic batch on the CPU, the loss and its gradient w.r.t. the
                     log-probs are computed on the CPU and on the device (relative differences), and on
                     the device whole vs summed over micro-batches;
  bucket_packing     a weight sync's packing on the device: rltrain.workers.weight_sync.iter_buckets
                     groups the model's tensors (bf16 matrices, fp32 norms) and a one-member
                     rltrain.workers.sync_group.SyncGroup (NCCL on CUDA, gloo on the CPU) packs each
                     bucket into its flat per-dtype buffers, broadcasts and unpacks views: timed, and
                     checked equal to the source, buffers on the device.

The model is SmolLM2-135M's architecture (the LlamaForCausalLM configuration of the GGUF that
rltrain/toy/smollm2.py converts: 30 layers, hidden 576, 9 heads, 3 key/value heads, MLP 1536,
vocabulary 49152, tied embeddings) with random weights: no weights travel to the machine, and
speed, memory and numerical agreement do not depend on them. `--smoke` uses a 2-layer model of the
same family. The script needs torch and transformers, and imports only the repo's `algorithms` and
rltrain modules free of ray, vllm and deepspeed: it blocks those three at start, so an import of
them fails here rather than on the GPU machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
for _blocked in ("ray", "vllm", "deepspeed"):  # an import of these fails at once (module docstring)
    sys.modules.setdefault(_blocked, None)

import torch  # noqa: E402

import algorithms  # noqa: E402
from algorithms import BatchField, RolloutBatch  # noqa: E402

SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
               rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
TINY = {**SMOLLM2, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512}
# (full, smoke) sizes of each part
SIZES = {
    "decode": dict(prompts=(16, 3), n=(8, 2), prompt_len=(100, 10), new_tokens=(128, 12), cpu_prompts=(4, 2),
                   cpu_new_tokens=(16, 6)),
    "precision": dict(groups=(4, 2), group_size=(8, 4), prompt_len=(64, 8), resp_len=(64, 8), micro=(12, 3)),
    "throughput": dict(rows=(16, 4), prompt_len=(128, 16), resp_len=(384, 16), warmup=(2, 1), iters=(5, 2)),
    "presets": dict(resp_len=(64, 16)),
    "buckets": dict(bucket_bytes=(64 << 20, 64 << 10), rounds=(3, 2)),
}
PAD = 2


def sizes(part: str, smoke: bool) -> dict:
    return {k: v[1] if smoke else v[0] for k, v in SIZES[part].items()}


def llama_config(smoke: bool):
    from transformers import LlamaConfig

    return LlamaConfig(**(TINY if smoke else SMOLLM2))


def build_model(config, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """Random weights (seeded), built on `device` in float32."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return LlamaForCausalLM(config)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the allocator's peak since the last reset; CPU: this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable, device: torch.device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def compare(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Cosine, relative distance ||g - ref|| / ||ref|| and the share of elements (non-zero in either)
    whose signs agree, in float64."""
    g, ref = g.double().flatten(), ref.double().flatten()
    nz = (g != 0) | (ref != 0)
    return {"cosine": float(torch.nn.functional.cosine_similarity(g, ref, dim=0)),
            "rel_dist": float((g - ref).norm() / ref.norm().clamp(min=1e-300)),
            "sign_agree": float((torch.sign(g[nz]) == torch.sign(ref[nz])).double().mean()) if nz.any() else 1.0}


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


# ----- synthetic batches ------------------------------------------------------------------------------
def rl_batch(groups: int, group_size: int, prompt_len: int, resp_len: int, vocab: int, seed: int,
             fixed_length: bool = False) -> RolloutBatch:
    """Groups of `group_size` rows sharing a random prompt, random responses (lengths resp_len/2..resp_len
    unless `fixed_length`), rewards 0/1 alternating inside each group (every group carries a gradient)."""
    from rltrain.workers.logprobs import pack_rows

    g = torch.Generator().manual_seed(seed)
    prompts, responses, rewards, gids = [], [], [], []
    for k in range(groups):
        prompt = torch.randint(3, vocab, (prompt_len,), generator=g).tolist()
        for j in range(group_size):
            n = resp_len if fixed_length else int(torch.randint(resp_len // 2, resp_len + 1, (1,), generator=g))
            prompts.append(prompt)
            responses.append(torch.randint(3, vocab, (n,), generator=g).tolist())
            rewards.append(float(j % 2))
            gids.append(k)
    rows = pack_rows(prompts, responses, PAD)
    return RolloutBatch(response_ids=rows["response_ids"], response_mask=rows["response_mask"],
                        rewards=torch.tensor(rewards), group_ids=torch.tensor(gids),
                        prompt_keys=[f"p{k}" for k in gids], input_ids=rows["input_ids"],
                        attention_mask=rows["attention_mask"], resp_start=rows["resp_start"])


def alg_batch(T: int, seed: int = 0, group_sizes: tuple[int, ...] = (3, 3, 2, 4)) -> RolloutBatch:
    """Right-padded log-prob batch with every field a preset reads (tests/algorithms/alg_helpers.py's
    random_batch with alternating rewards, entropies below GTPO's 0.7 filter, critic values for ppo)."""
    g = torch.Generator().manual_seed(seed)
    N = sum(group_sizes)
    group_ids = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
    rewards = (torch.arange(N) % 2).float()  # a reward spread in every group but one
    rewards[group_ids == 1] = 1.0  # an all-equal group
    old = -torch.rand(N, T, generator=g) * 2 - 0.05
    return RolloutBatch(
        response_ids=torch.randint(1, 5, (N, T), generator=g) * mask.long(), response_mask=mask, rewards=rewards,
        group_ids=group_ids, prompt_keys=[f"p{int(k)}" for k in group_ids], old_logp=old,
        sampling_logp=old + 0.1 * torch.randn(N, T, generator=g), ref_logp=old + 0.2 * torch.randn(N, T, generator=g),
        entropy=torch.rand(N, T, generator=g), prox_logp=old + 0.05 * torch.randn(N, T, generator=g),
        versions=torch.zeros(N, dtype=torch.long), step=1, turn_ids=torch.where(mask > 0, 0, -1).long(),
        token_rewards=torch.zeros(N, T), gt_probs=torch.full((N, 1), float("nan")), values=torch.rand(N, T, generator=g))


# ----- parts --------------------------------------------------------------------------------------------
def engine_decode(device: torch.device, smoke: bool, tmp: Path) -> dict:
    from rltrain.engines.base import SamplingConfig
    from rltrain.engines.transformers_engine import TransformersEngine

    s = sizes("decode", smoke)
    model_dir = tmp / "model"
    build_model(llama_config(smoke), device).save_pretrained(model_dir)  # the engines load it from disk
    g = torch.Generator().manual_seed(0)
    vocab = llama_config(smoke).vocab_size
    prompts = [torch.randint(3, vocab, (s["prompt_len"],), generator=g).tolist() for _ in range(s["prompts"])]
    out: dict = {"rows": s["prompts"] * s["n"], "prompt_len": s["prompt_len"], "new_tokens": s["new_tokens"]}

    lean = TransformersEngine(str(model_dir), "float32", 0, decode="lean", device=str(device))
    gen = TransformersEngine(str(model_dir), "float32", 0, decode="generate", device=str(device))
    out["parameters_on_device"] = all(p.device == device for e in (lean, gen) for p in e.model.parameters())
    greedy = SamplingConfig(n=1, max_new_tokens=s["new_tokens"], greedy=True)
    a, b = lean.generate(prompts, greedy), gen.generate(prompts, greedy)
    out["fp32_greedy_lean_vs_generate_rows_equal"] = sum(x.response_ids == y.response_ids for x, y in zip(a, b)) / len(a)
    out["fp32_greedy_lean_vs_generate_max_logprob_gap"] = max(
        (abs(p - q) for x, y in zip(a, b) for p, q in zip(x.logprobs, y.logprobs)), default=0.0)
    del gen
    cpu = TransformersEngine(str(model_dir), "float32", 0, decode="lean", device="cpu")
    short = SamplingConfig(n=1, max_new_tokens=s["cpu_new_tokens"], greedy=True)
    c, d = cpu.generate(prompts[:s["cpu_prompts"]], short), lean.generate(prompts[:s["cpu_prompts"]], short)
    out["fp32_greedy_device_vs_cpu_rows_equal"] = sum(x.response_ids == y.response_ids for x, y in zip(c, d)) / len(c)
    del cpu, lean

    sampling = SamplingConfig(n=s["n"], max_new_tokens=s["new_tokens"], temperature=1.0, seed=1)
    for decode in ("lean", "generate"):
        engine = TransformersEngine(str(model_dir), "bfloat16", 0, decode=decode, device=str(device))
        engine.generate(prompts[:2], SamplingConfig(n=2, max_new_tokens=4, seed=0))  # warm-up
        reset_peak(device)
        first, seconds = timed(lambda: engine.generate(prompts, sampling), device)
        tokens = sum(len(x.response_ids) for x in first)
        out[f"bf16_{decode}_tokens_per_s"] = tokens / seconds
        out[f"bf16_{decode}_seconds"] = seconds
        out[f"bf16_{decode}_peak_memory_mb"] = peak_memory_mb(device)
        again = engine.generate(prompts, sampling)
        out[f"bf16_{decode}_same_seed_same_tokens"] = [x.response_ids for x in again] == [x.response_ids for x in first]
        if device.type == "cuda":
            steps = max(len(x.response_ids) for x in first)
            out[f"bf16_{decode}_host_syncs_per_step"] = count_syncs(lambda: engine.generate(prompts, sampling)) / steps
        del engine
    return out


def count_syncs(fn: Callable) -> int:
    """Device -> host synchronisations during `fn`, as CUDA's sync debug mode reports them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def policy_gradient(model: torch.nn.Module, prepared: RolloutBatch, micro: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat fp32 gradient of the grpo loss over the batch, log-probs): micro-batches of `micro` rows, each
    an on-policy step from itself (old = reference = its own log-probs), gradients summed in fp32."""
    from rltrain.workers.logprobs import response_logprobs

    loss_fn = algorithms.build_loss({"preset": "grpo"})
    params = list(model.parameters())
    total = [torch.zeros(p.shape, dtype=torch.float32, device=device) for p in params]
    logps = torch.zeros(prepared.response_ids.shape, device=device)
    for a in range(0, len(prepared), micro):
        idx = torch.arange(a, min(a + micro, len(prepared)))
        mb = prepared.index(idx).to(device)
        logp, ent = response_logprobs(model, mb.input_ids, mb.attention_mask, mb.resp_start, mb.response_ids,
                                      with_entropy=True)
        mb.old_logp = mb.prox_logp = mb.ref_logp = logp.detach()
        loss, _ = loss_fn(logp, mb, entropy=ent)
        loss.backward()
        for t, p in zip(total, params):
            if p.grad is not None:
                t += p.grad.float()
                p.grad = None
        logps[idx.to(device)] = logp.detach()
    return torch.cat([t.flatten() for t in total]), logps


def learner_precision(device: torch.device, smoke: bool, tmp: Path) -> dict:
    s = sizes("precision", smoke)
    config = llama_config(smoke)
    batch = rl_batch(s["groups"], s["group_size"], s["prompt_len"], s["resp_len"], config.vocab_size, seed=1)
    prepared, _ = algorithms.build_driver({"preset": "grpo"}).prepare(batch)  # the driver's part, on the CPU
    fp32 = build_model(config, device)
    grads, logps = {}, {}
    for name, model in (("fp32", fp32), ("bf16", copy.deepcopy(fp32).to(torch.bfloat16))):
        for split, micro in (("whole", len(prepared)), ("micro", s["micro"])):
            grads[name, split], logps[name, split] = policy_gradient(model, prepared, micro, device)
        del model
    mask = prepared.response_mask.to(device).bool()
    return {"rows": len(prepared), "micro_batch_rows": s["micro"], "parameters": grads["fp32", "whole"].numel(),
            "bf16_vs_fp32": compare(grads["bf16", "whole"], grads["fp32", "whole"]),
            "fp32_micro_vs_whole": compare(grads["fp32", "micro"], grads["fp32", "whole"]),
            "bf16_micro_vs_whole": compare(grads["bf16", "micro"], grads["bf16", "whole"]),
            "logp_gap_bf16_vs_fp32": float((logps["bf16", "whole"] - logps["fp32", "whole"])[mask].abs().mean())}


def train_throughput(device: torch.device, smoke: bool, tmp: Path) -> dict:
    from rltrain.workers.logprobs import response_logprobs

    s = sizes("throughput", smoke)
    config = llama_config(smoke)
    batch = rl_batch(s["rows"] // 4, 4, s["prompt_len"], s["resp_len"], config.vocab_size, seed=2, fixed_length=True)
    mb = algorithms.build_driver({"preset": "grpo"}).prepare(batch)[0].to(device)
    loss_fn = algorithms.build_loss({"preset": "grpo"})
    out: dict = {"rows": s["rows"], "tokens_per_row": s["prompt_len"] + s["resp_len"], "iterations": s["iters"]}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model = build_model(config, device).to(dtype).train()

        def step() -> None:
            logp, ent = response_logprobs(model, mb.input_ids, mb.attention_mask, mb.resp_start, mb.response_ids,
                                          with_entropy=True)
            mb.old_logp = mb.prox_logp = mb.ref_logp = logp.detach()
            loss_fn(logp, mb, entropy=ent)[0].backward()
            model.zero_grad(set_to_none=True)

        for _ in range(s["warmup"]):
            step()
        reset_peak(device)
        _, seconds = timed(lambda: [step() for _ in range(s["iters"])], device)
        tokens = int(mb.attention_mask.sum()) * s["iters"]
        out[name] = {"tokens_per_s": tokens / seconds, "seconds_per_step": seconds / s["iters"],
                     "peak_memory_mb": peak_memory_mb(device)}
        del model
    return out


def loss_and_grad(algo, batch: RolloutBatch, logp0: torch.Tensor, entropy: torch.Tensor,
                  parts: list[list[int]]) -> tuple[float, torch.Tensor]:
    """The loss summed over the row sets `parts` and its gradient w.r.t. the log-probs, on logp0's device."""
    logp = logp0.clone().requires_grad_(True)
    total = torch.zeros((), device=logp0.device)
    for rows in parts:
        idx = torch.tensor(rows, device=logp0.device)
        total = total + algo.loss(logp[idx], batch.index(idx), entropy=entropy[idx])[0]
    total.backward()
    return float(total.detach()), logp.grad.cpu()


def presets(device: torch.device, smoke: bool, tmp: Path) -> dict:
    T = sizes("presets", smoke)["resp_len"]
    names = sorted(set(algorithms.PRESETS) - {"forking"}) + ["dapo+forking"]
    out: dict = {}
    for name in names:
        algo = algorithms.build({"preset": name})
        batch, _ = algo.prepare(alg_batch(T))  # the driver's part, on the CPU
        g = torch.Generator().manual_seed(1)
        logp0 = (batch.old_logp + 0.4 * torch.randn(batch.old_logp.shape, generator=g)).clamp(max=-1e-3)
        entropy = torch.rand(logp0.shape, generator=g)
        if algo.needs(BatchField.CUR_LOGP):
            batch.cur_logp = logp0
            batch, _ = algo.prepare_minibatch(batch)
        whole = [list(range(len(batch)))]
        # uneven micro-batches; whole groups for presets whose loss needs them (rows 0-2 | 3-5 | 6-7 | 8-11)
        micro = [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9, 10, 11]] if algo.group_aligned_microbatches \
            else [list(range(0, 5)), list(range(5, 9)), list(range(9, 12))]
        loss_cpu, grad_cpu = loss_and_grad(algo, batch, logp0, entropy, whole)
        on_device = batch.to(device)
        loss_dev, grad_dev = loss_and_grad(algo, on_device, logp0.to(device), entropy.to(device), whole)
        loss_micro, grad_micro = loss_and_grad(algo, on_device, logp0.to(device), entropy.to(device), micro)
        out[name] = {"loss_cpu": loss_cpu, "loss_device": loss_dev, "loss_rel_diff": rel_diff(loss_dev, loss_cpu),
                     "grad_norm_cpu": float(grad_cpu.norm()),
                     "grad_rel_diff": compare(grad_dev, grad_cpu)["rel_dist"],
                     "micro_loss_rel_diff": rel_diff(loss_micro, loss_dev),
                     "micro_grad_rel_diff": compare(grad_micro, grad_dev)["rel_dist"]}
    return out


def bucket_packing(device: torch.device, smoke: bool, tmp: Path) -> dict:
    from rltrain.workers.sync_group import SyncGroup, layout_of
    from rltrain.workers.weight_sync import iter_buckets

    s = sizes("buckets", smoke)
    model = build_model(llama_config(smoke), device)
    # what an engine in bf16 receives, with norms kept in fp32: two dtypes, so two buffers per bucket
    named = [(n, p.detach() if "norm" in n else p.detach().to(torch.bfloat16))
             for n, p in model.named_parameters(remove_duplicate=False)]
    group = SyncGroup(f"file://{tmp / 'rendezvous'}", 0, 1, device.type, timeout_s=120.0)
    rounds = []
    for _ in range(s["rounds"]):  # the first allocates the buffers; later ones reuse them
        t_pack = t_unpack = 0.0
        equal, on_device, n_buckets, n_bytes = True, True, 0, 0
        for bucket in iter_buckets(iter(named), s["bucket_bytes"]):
            layout = layout_of(bucket)
            sent, seconds = timed(lambda: group.send(bucket, layout), device)
            t_pack += seconds
            views, seconds = timed(lambda: list(group.receive(layout)), device)
            t_unpack += seconds
            source = dict(bucket)
            equal &= all(torch.equal(v, source[k]) for k, v in views)
            on_device &= all(v.device == device for _, v in views)
            n_buckets, n_bytes = n_buckets + 1, n_bytes + sent
        rounds.append({"pack_broadcast_s": t_pack, "unpack_s": t_unpack, "equal": equal, "on_device": on_device,
                       "buckets": n_buckets, "bytes": n_bytes})
    last = rounds[-1]
    return {"buckets": last["buckets"], "bytes": last["bytes"], "bucket_bytes": s["bucket_bytes"],
            "buffers_on_device": all(b.device == device for b in group.buffers.values()),
            "views_on_device": all(r["on_device"] for r in rounds), "unpacked_equal": all(r["equal"] for r in rounds),
            "first_pack_broadcast_s": rounds[0]["pack_broadcast_s"], "pack_broadcast_s": last["pack_broadcast_s"],
            "unpack_s": last["unpack_s"], "pack_gb_per_s": last["bytes"] / last["pack_broadcast_s"] / 1e9}


PARTS: dict[str, Callable[[torch.device, bool, Path], dict]] = {
    "engine_decode": engine_decode, "learner_precision": learner_precision, "train_throughput": train_throughput,
    "presets": presets, "bucket_packing": bucket_packing}


# ----- the run ------------------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"cpu: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"cpu: {platform.processor() or platform.machine()}"


def header(device: torch.device, smoke: bool) -> dict:
    import transformers

    try:
        import peft
        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    return {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
            "cuda": torch.version.cuda, "transformers": transformers.__version__, "peft": peft_version,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": smoke,
            "cpu_threads": torch.get_num_threads(), "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "model": {"architecture": "LlamaForCausalLM, random weights", "config": TINY if smoke else SMOLLM2}}


def run(device: torch.device, smoke: bool, budget_s: float) -> dict:
    result = header(device, smoke)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        for name, part in PARTS.items():
            if time.perf_counter() - t0 > budget_s:
                result[name] = {"skipped": f"the time budget of {budget_s:.0f} s was spent"}
                continue
            start = time.perf_counter()
            part_dir = Path(tmp) / name
            part_dir.mkdir()
            try:
                result[name] = part(device, smoke, part_dir)
            except Exception as e:  # recorded with where it was raised; the script exits 1
                result[name] = {"error": f"{type(e).__name__}: {e}",
                                "traceback": traceback.format_exc().splitlines()[-12:]}
            result[name]["seconds"] = time.perf_counter() - start
            print(f"[device_check] {name}: {time.perf_counter() - start:.1f} s", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result["seconds"] = time.perf_counter() - t0
    return result


def main() -> None:
    from rltrain.engines.device import resolve_device

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="the same parts on the CPU at toy sizes")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --smoke); never falls back")
    p.add_argument("--out", default=None, help="default: docs/gpu.json; with --smoke a temporary file")
    p.add_argument("--budget-s", type=float, default=None, help="parts left when it is spent are skipped "
                                                                "(default 420, 100 with --smoke)")
    args = p.parse_args()
    device = resolve_device(args.device or ("cpu" if args.smoke else "cuda"))
    docs = (ROOT / "docs").resolve()
    if args.out is None:
        out = Path(tempfile.mkstemp(prefix="device_check_", suffix=".json")[1]) if args.smoke else docs / "gpu.json"
    else:
        out = Path(args.out)
    if args.smoke and docs in out.resolve().parents:
        raise SystemExit("--smoke figures are toy-sized CPU figures: they do not go to docs/ (give another --out)")
    budget = args.budget_s if args.budget_s is not None else (100.0 if args.smoke else 420.0)
    result = run(device, args.smoke, budget)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"[device_check] wrote {out} ({result['seconds']:.0f} s)")
    failed = [k for k in PARTS if "error" in result[k] or "skipped" in result[k]]
    bad = [k for k in PARTS if not all_finite(result[k])]
    if failed or bad:
        print(f"[device_check] failed or skipped: {failed}; non-finite figures: {bad}", file=sys.stderr)
        raise SystemExit(1)


def all_finite(value) -> bool:
    """Every number in a part's figures is finite."""
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


if __name__ == "__main__":
    main()
