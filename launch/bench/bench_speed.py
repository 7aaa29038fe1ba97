"""Benchmark (not a test): this machine's limits and a real-model RL step measured against them, in one run.

    .venv/bin/python launch/bench/bench_speed.py [--steps 5] [--out docs/speed.json]

1. Limits, measured here and now: bf16 and fp32 matrix products (2048^3, and the decode shape
   32 x 576 x 1536 of SmolLM2 at 32 sequences), memory reads (sum over 1 GiB).
2. Phases: rltrain on SmolLM2-135M-Instruct, 8 prompts x 4 samples x 128 tokens, with the defaults of
   configs/smollm2_gsm.yaml and no KL (as vs_trl.py), then with the KL term on (the reference pass).
   Each phase of the steady steps against its bound:
     rollout   generated tokens/s vs the decode bound: max(compute = 2 x params x (prompt + generated
               tokens) / bf16 peak, memory = decode steps x weight bytes / read bandwidth);
     learner   achieved TFLOP/s (6 x params x tokens in the batch / update time) vs the bf16 peak;
     passes    reference / old log-prob passes (0 when skipped);
     sync      weight bytes / sync time;
     overhead  step time not in those phases (collection, rewards, the driver), as a share of the step.
3. Levers, each on and off in the same process: the lean decode loop vs transformers `generate`
   (32 x 128 tokens), the lean decode's skips (a group's prompt prefilled once, stopped rows leaving the
   batch, attention over written cache slots only) on and off (32 rows at 128 and 192 tokens), the chunked output layer vs full-vocabulary logits (forward + backward of 8
   rows, time and peak memory in a fresh process each); shared prompts vs one prompt per row (forward +
   backward of a 8 x 4 batch of real chat prompts with long or short responses in micro-batches of 8,
   the learner's planner and log-prob path, the machine's fast dtype, alternating in one process).

    .venv/bin/python launch/bench/bench_speed.py --parts levers   # only the levers (~10 minutes)
    .venv/bin/python launch/bench/bench_speed.py --parts levers --levers decode_skip_lever   # one of them
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _rate(fn, work: float, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return work * reps / (time.perf_counter() - t0)


def machine_limits() -> dict[str, float]:
    import torch

    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        out[f"matmul_{name}_tflops"] = _rate(lambda: a @ b, 2 * 2048**3, 8) / 1e12
        x, w = torch.randn(32, 576, dtype=dtype), torch.randn(1536, 576, dtype=dtype)
        out[f"matmul_{name}_decode_shape_tflops"] = _rate(lambda: x @ w.T, 2 * 32 * 576 * 1536, 200) / 1e12
    big = torch.ones(2**28, dtype=torch.float32)  # 1 GiB, written so every page is real memory
    out["memory_read_gbs"] = _rate(lambda: big.sum(), big.numel() * 4, 5) / 1e9
    return out


def run_steps(steps: int, over: dict) -> tuple[list[dict], int, int]:
    """Metrics of `steps` real-model steps; the model's parameter count and its weight bytes in bf16."""
    from rltrain.config import load
    from rltrain.driver.trainer import Trainer

    cfg = load(str(ROOT / "configs" / "smollm2_gsm.yaml"), {
        "rollout.prompts_per_step": 8, "rollout.n_samples": 4, "rollout.max_new_tokens": 128,
        "trainer.steps": steps, "trainer.output_dir": str(ROOT / "runs" / "bench_speed"),
        "trainer.run_name": f"speed_{time.strftime('%H%M%S')}", "logging.wandb": False, "logging.console": False,
        **over})
    trainer = Trainer(cfg)
    try:
        metrics = [trainer.step() for _ in range(steps)]
        params = trainer.actors.learners.call("param_count")[0]
    finally:
        trainer.close()
    return metrics, params, 2 * params


def phase_report(metrics: list[dict], params: int, weight_bytes: int, limits: dict) -> dict[str, float]:
    steady = metrics[2:] or metrics
    mean = lambda k: statistics.mean(m.get(k, 0.0) for m in steady)  # noqa: E731
    step, gen, update = mean("timing_s/step"), mean("timing_s/gen"), mean("timing_s/update")
    passes, sync = mean("timing_s/logprob"), mean("timing_s/weight_sync_total")
    samples, gen_len = mean("rollout/samples"), mean("rollout/response_length_mean")
    tokens = mean("perf/tokens_per_s") * step  # prompt + response tokens of the batch
    generated = samples * gen_len
    peak = limits["matmul_bf16_tflops"] * 1e12
    decode_compute = 2 * params * tokens / peak
    decode_memory = mean("rollout/response_length_max") * weight_bytes / (limits["memory_read_gbs"] * 1e9)
    decode_bound = max(decode_compute, decode_memory)
    learner_tflops = 6 * params * tokens / update / 1e12
    best_peak = max(limits["matmul_bf16_tflops"], limits["matmul_fp32_tflops"])  # without AMX fp32 is the faster
    return {
        "step_s": step, "gen_s": gen, "update_s": update, "logprob_passes_s": passes, "weight_sync_s": sync,
        "tokens_in_batch": tokens, "generated_tokens": generated,
        "rollout_tokens_per_s": generated / gen, "decode_bound_s": decode_bound, "rollout_vs_bound": gen / decode_bound,
        "learner_tokens_per_s": tokens / update, "learner_tflops": learner_tflops,
        "learner_vs_peak": limits["matmul_bf16_tflops"] / learner_tflops,
        "learner_vs_best_peak": best_peak / learner_tflops,
        "sync_gbs": mean("sync/bytes") / max(mean("timing_s/weight_sync"), 1e-9) / 1e9,
        "sync_share": sync / step, "overhead_share": (step - gen - passes - update - sync) / step,
        "learner_peak_rss_mb": max(m.get("perf/learner_peak_rss_mb", 0.0) for m in metrics),
    }


def decode_lever(n_rows: int = 32, tokens: int = 128) -> dict[str, float]:
    """Generated tokens/s of the transformers engine with each decode path, same prompts and model."""
    from transformers import AutoTokenizer

    from rltrain.data import render_prompt
    from rltrain.data.word_problems import make_word_problem_rows
    from rltrain.engines.base import SamplingConfig
    from rltrain.engines.transformers_engine import TransformersEngine
    from rltrain.toy.smollm2 import ensure_smollm2

    model = str(ensure_smollm2())
    tok = AutoTokenizer.from_pretrained(model)
    rows = make_word_problem_rows("train", n_rows // 4, 1)
    ids = [tok(render_prompt(r["prompt"], tok), add_special_tokens=False)["input_ids"] for r in rows]
    out = {}
    for decode in ("lean", "generate"):
        engine = TransformersEngine(model, "bfloat16", 0, decode=decode)
        engine.generate(ids[:1], SamplingConfig(n=1, max_new_tokens=4))  # warm-up
        t0 = time.perf_counter()
        samples = engine.generate(ids, SamplingConfig(n=4, max_new_tokens=tokens, temperature=0.7, seed=1))
        dt = time.perf_counter() - t0
        out[f"{decode}_s"] = dt
        out[f"{decode}_tokens_per_s"] = sum(len(s.response_ids) for s in samples) / dt
    out["lean_speedup"] = out["generate_s"] / out["lean_s"]
    return out


def decode_skip_lever(n_prompts: int = 8, n_samples: int = 4, token_budgets: tuple[int, ...] = (128, 192)) -> dict:
    """The lean decode with and without its skips (a group's prompt prefilled once; stopped rows leaving the
    batch; attention reading only the cache slots written so far), same prompts, seed and model in the machine's fast dtype, alternating (medians of 3 after
    a warm-up), at each token budget; also whether both gave the same tokens."""
    import torch
    from transformers import AutoTokenizer

    from rltrain.config.hardware import fast_dtype
    from rltrain.data import render_prompt
    from rltrain.data.word_problems import make_word_problem_rows
    from rltrain.engines import lean_decode
    from rltrain.engines.transformers_engine import TransformersEngine
    from rltrain.toy.smollm2 import ensure_smollm2

    model = str(ensure_smollm2())
    tok = AutoTokenizer.from_pretrained(model)
    engine = TransformersEngine(model, fast_dtype(), 0)
    prompts = [tok(render_prompt(r["prompt"], tok), add_special_tokens=False)["input_ids"]
               for r in make_word_problem_rows("train", n_prompts, 1)]
    rows = [p for p in prompts for _ in range(n_samples)]
    variants = {"skips": {}, "no_skips": {"compact_fraction": float("inf"), "share_prompts": False}}
    out: dict = {"dtype": fast_dtype(), "rows": len(rows)}
    for budget in token_budgets:
        kw = dict(max_new_tokens=budget, temperature=0.7, greedy=False, stop_ids=[engine.eos_id], pad_id=engine.pad_id)
        times: dict[str, list[float]] = {name: [] for name in variants}
        tokens = {}
        for rep in range(4):
            for name, opts in variants.items():
                lean_decode.READ_WRITTEN_SLOTS_ONLY = name == "skips"
                t0 = time.perf_counter()
                tokens[name], _ = lean_decode.sample(engine.model, rows, seed=rep, **kw, **opts)
                if rep:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
        lengths = (tokens["skips"] != engine.pad_id).sum(-1).float()
        res = {f"{name}_s": statistics.median(ts) for name, ts in times.items()}
        out[f"tokens_{budget}"] = {**res, "speedup": res["no_skips_s"] / res["skips_s"],
                                   "response_len_mean": float(lengths.mean()), "response_len_max": float(lengths.max()),
                                   "same_tokens": bool(torch.equal(tokens["skips"], tokens["no_skips"]))}
        print(json.dumps({f"decode_skip_lever_{budget}": out[f"tokens_{budget}"]}), flush=True)
    lean_decode.READ_WRITTEN_SLOTS_ONLY = True
    return out


HEAD_PROBE = """
import json, resource, sys, time, torch
sys.path.insert(0, {root!r})
from transformers import AutoModelForCausalLM
from rltrain.toy.smollm2 import ensure_smollm2
from rltrain.workers.logprobs import response_logprobs
torch.set_num_threads(2)
m = AutoModelForCausalLM.from_pretrained(str(ensure_smollm2()), dtype=torch.bfloat16)
g = torch.Generator().manual_seed(0)
ids = torch.randint(100, 30000, (8, 228), generator=g); am = torch.ones_like(ids)
rs = torch.full((8,), 100); resp = ids[:, 100:]
def full():
    logits = m(input_ids=ids, attention_mask=am).logits
    pos = (rs.view(-1, 1) - 1 + torch.arange(128).view(1, -1))
    lp = torch.log_softmax(logits.gather(1, pos.unsqueeze(-1).expand(8, 128, logits.shape[-1])).float() / 0.7, -1)
    return lp.gather(-1, resp.unsqueeze(-1)).squeeze(-1), -(lp.exp() * lp).sum(-1)
def chunked():
    return response_logprobs(m, ids, am, rs, resp, 0.7, True)
fn = {{"full": full, "chunked": chunked}}[{variant!r}]
times = []
for _ in range(4):
    t0 = time.perf_counter(); lp, ent = fn(); (lp.sum() + ent.sum()).backward(); times.append(time.perf_counter() - t0)
    m.zero_grad(set_to_none=True)
print(json.dumps({{"s": sorted(times[1:])[1], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def head_lever() -> dict[str, float]:
    """Forward + backward of 8 rows (100 prompt + 128 response tokens), each way in a fresh process."""
    out = {}
    for variant in ("full", "chunked"):
        res = subprocess.run([sys.executable, "-c", HEAD_PROBE.format(root=str(ROOT), variant=variant)],
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        out[f"{variant}_s"], out[f"{variant}_peak_rss_mb"] = r["s"], r["peak_rss_mb"]
    out["chunked_speedup"] = out["full_s"] / out["chunked_s"]
    return out


PROMPT_PROBE = """
import json, statistics, sys, time, torch
sys.path.insert(0, {root!r})
from transformers import AutoModelForCausalLM, AutoTokenizer
from rltrain.config.hardware import fast_dtype
from rltrain.data import render_prompt
from rltrain.data.word_problems import make_word_problem_rows
from rltrain.toy.smollm2 import ensure_smollm2
from rltrain.workers.logprobs import pack_rows, response_logprobs
from rltrain.workers.sharding import plan_micro_batches
torch.set_num_threads(2)
path = str(ensure_smollm2())
tok = AutoTokenizer.from_pretrained(path)
m = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, fast_dtype()), attn_implementation="eager")
g = torch.Generator().manual_seed(0)
prompts = [tok(render_prompt(r["prompt"], tok), add_special_tokens=False)["input_ids"]
           for r in make_word_problem_rows("train", 8, 1)]
low, high, capped = {lengths}
lengths = [high if torch.rand(1, generator=g) < capped else int(torch.randint(low, high, (1,), generator=g))
           for _ in range(32)]
packed = pack_rows([prompts[i // 4] for i in range(32)],
                   [torch.randint(100, 30000, (n,), generator=g).tolist() for n in lengths], 0)
def step(share):
    groups = torch.arange(8).repeat_interleave(4) if share else None
    order, cuts = plan_micro_batches(packed["attention_mask"].sum(-1), groups, 8, split_groups=True)
    for a, b in zip(cuts[:-1], cuts[1:]):
        i = order[a:b]
        lp, _ = response_logprobs(m, packed["input_ids"][i], packed["attention_mask"][i], packed["resp_start"][i],
                                  packed["response_ids"][i], 0.7, False, share_prompts=share)
        (lp * packed["response_mask"][i]).sum().backward()
    m.zero_grad(set_to_none=True)
times = {{False: [], True: []}}
for r in range(4):  # round 0 warms up; the others alternate, so drift hits both ways alike
    for share in (False, True):
        t0 = time.perf_counter(); step(share); r and times[share].append(time.perf_counter() - t0)
print(json.dumps({{"per_row_s": statistics.median(times[False]), "shared_s": statistics.median(times[True]),
                  "tokens": int(packed["attention_mask"].sum()), "dtype": fast_dtype()}}))
"""

# response lengths (low, high, share at the cap `high`): as the real-model run starts (146 tokens on
# average at 192: many capped) and after it learned (47 tokens on average), docs/real_model.md
PROMPT_LEVER_LENGTHS = {"long_responses": (40, 128, 0.3), "short_responses": (20, 80, 0.0)}


def prompt_lever() -> dict[str, dict[str, float]]:
    """Forward + backward of a 32-row batch (8 prompts x 4 samples), each row running its prompt or the
    rows of a group sharing it, alternating in one process (medians of 3 rounds after a warm-up), for
    long and for short responses."""
    out: dict[str, dict[str, float]] = {}
    for regime, lengths in PROMPT_LEVER_LENGTHS.items():
        res = subprocess.run([sys.executable, "-c", PROMPT_PROBE.format(root=str(ROOT), lengths=lengths)],
                             capture_output=True, text=True, check=True)
        out[regime] = {"lengths": list(lengths), **json.loads(res.stdout.strip().splitlines()[-1])}
        out[regime]["shared_speedup"] = out[regime]["per_row_s"] / out[regime]["shared_s"]
    return out


LEVERS = {"decode_lever": decode_lever, "decode_skip_lever": decode_skip_lever, "head_lever": head_lever,
          "prompt_lever": prompt_lever}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "docs" / "speed.json"))
    p.add_argument("--parts", nargs="+", choices=["phases", "levers"], default=["phases", "levers"],
                   help="what to measure (the limits always); a part not run keeps its entries in --out")
    p.add_argument("--levers", nargs="+", choices=list(LEVERS), default=list(LEVERS), help="which levers")
    args = p.parse_args()
    out = Path(args.out)
    record: dict = json.loads(out.read_text()) if out.exists() else {}
    limits = machine_limits()  # in the record next to each part measured against them
    print(json.dumps({"limits": limits}), flush=True)
    from rltrain.config.hardware import cpu_description, cpu_flags, fast_dtype

    if "phases" in args.parts:
        record["limits"] = limits  # the phases' (and "machine" below describes their CPU)
        import ray

        ray.init(include_dashboard=False, log_to_driver=False)
        record["phases"] = {}
        for name, over in (("no_kl", {"algorithm.regularizer": {"name": "none"}}), ("kl", {})):
            metrics, params, weight_bytes = run_steps(args.steps, over)
            record["phases"][name] = phase_report(metrics, params, weight_bytes, limits)
            record["params"] = params
            print(json.dumps({name: record["phases"][name]}), flush=True)
        flags = cpu_flags()
        record["machine"] = {"cpu": cpu_description(), "cpus": os.cpu_count(),
                             "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
                             "model_dtype_auto": fast_dtype()}
    if "levers" in args.parts:
        for name in args.levers:  # each lever with the limits and the CPU it was measured on
            record[name] = {**LEVERS[name](), "limits": limits, "cpu": cpu_description()}
            print(json.dumps({name: record[name]}), flush=True)
    out.write_text(json.dumps(record, indent=2))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
