"""Benchmark (not a test): does the bf16 learner take the same GRPO step as the fp32 one, on the real model?

    .venv/bin/python launch/bench/bench_precision.py [--prompts 24] [--seed 0] [--out docs/precision.json]

The fast defaults (`model.dtype: auto` -> bf16 where this CPU multiplies bf16 faster) compute the
update's forward and backward in bf16 (DeepSpeed keeps fp32 master weights; log-probs and the loss in
fp32). Whether that changes learning cannot be read from one seed of a 30-step curve (docs/real_model.md:
two seeds of one setting differ more than the two settings do). This measures the step itself on real
data: SmolLM2-135M-Instruct samples word problems (configs/smollm2_gsm.yaml's sampling, bf16 engine),
the `math` reward scores them, and two GRPO batches A and B (4 groups of 8 with a reward spread each,
like a training step's) go through the config's loss (grpo preset) in micro-batches of 8, gradients
summed in fp32 as DeepSpeed does, once with the model in fp32 and once in bf16. Printed and written:
the cosine and relative distance between the bf16 and fp32 gradients of one batch, the share of
elements whose sign agrees (Adam's first step is lr x sign(g) per element), against the same figures
between the fp32 gradients of batch A and batch B (how much one batch's draw moves the step), and
the per-token log-prob gap between the two precisions. And what summing the bf16 model's micro-batch
gradients in bf16 instead would lose (DeepSpeed did that at ZeRO-0 until rltrain set its fp32
accumulation): the bf16-summed gradient against the fp32-summed one of the same bf16 micro-batch
gradients, at the config's micro-batch size and at `--small-micro` rows (more micro-batches).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def sample_batches(model_dir: str, n_prompts: int, seed: int, group_size: int, temperature: float,
                   max_new_tokens: int, groups_per_batch: int) -> list:
    """Two batches of `groups_per_batch` prompt groups whose rewards are not all equal (the groups that
    carry a GRPO gradient), sampled by the bf16 transformers engine and scored by the `math` reward."""
    import rewards
    from transformers import AutoTokenizer

    from rltrain.data import rows_from_dicts
    from rltrain.data.datasets import render_prompt
    from rltrain.data.word_problems import make_word_problem_rows
    from rltrain.driver.flow.rollout import Record, to_batch
    from rltrain.engines.base import SamplingConfig
    from rltrain.engines.transformers_engine import TransformersEngine

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = rows_from_dicts(make_word_problem_rows("train", n_prompts, seed), source="word_problems/train")
    prompt_ids = [tok(render_prompt(r.prompt, tok), add_special_tokens=False)["input_ids"] for r in rows]
    engine = TransformersEngine(model_dir, "bfloat16", seed)
    samples = engine.generate(prompt_ids, SamplingConfig(n=group_size, max_new_tokens=max_new_tokens,
                                                         temperature=temperature, seed=seed))
    del engine
    texts = [tok.decode(s.response_ids, skip_special_tokens=True) for s in samples]
    score = rewards.load("math")([rows[s.prompt_index].prompt for s in samples], texts,
                                 answer=[rows[s.prompt_index].answer for s in samples])
    records = [Record(rows[s.prompt_index], s.prompt_index, prompt_ids[s.prompt_index], s.response_ids, s.logprobs,
                      s.finished, 0, reward=float(r or 0.0)) for s, r in zip(samples, score)]
    groups: dict[int, list] = {}
    for rec in records:
        groups.setdefault(rec.group, []).append(rec)
    useful = [g for g in groups.values() if len({r.reward for r in g}) > 1]
    print(f"[precision] {len(useful)} of {len(groups)} groups carry a reward spread; "
          f"accuracy {sum(r.reward for r in records) / len(records):.3f}", flush=True)
    if len(useful) < 2 * groups_per_batch:
        raise SystemExit(f"only {len(useful)} groups with a reward spread; need {2 * groups_per_batch}: raise --prompts")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = lambda gs: to_batch([r for g in gs for r in g], pad, 0, max_new_tokens)  # noqa: E731
    return [batch(useful[:groups_per_batch]), batch(useful[groups_per_batch:2 * groups_per_batch])]


def gradient(model: torch.nn.Module, batch, micro: int,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat gradient of the GRPO loss over the batch with micro-batch gradients summed in fp32, the same
    summed in the model's dtype, log-probs) under `model` (its weights are not changed); micro-batches
    of `micro` rows."""
    import algorithms

    from rltrain.workers.logprobs import response_logprobs

    algo = algorithms.build({"preset": "grpo"})
    prepared, _ = algo.prepare(batch)
    total = [torch.zeros(p.shape, dtype=torch.float32) for p in model.parameters()]
    lowp = [torch.zeros(p.shape, dtype=p.dtype) for p in model.parameters()]
    logps = torch.zeros(batch.response_ids.shape)
    for a in range(0, len(batch), micro):
        idx = torch.arange(a, min(a + micro, len(batch)))
        mb = prepared.index(idx)
        logp, ent = response_logprobs(model, mb.input_ids, mb.attention_mask, mb.resp_start, mb.response_ids,
                                      temperature, with_entropy=True, share_prompts=True)
        mb.old_logp = mb.prox_logp = mb.ref_logp = logp.detach()  # one on-policy step from the reference
        loss, _ = algo.loss(logp, mb, entropy=ent)
        loss.backward()
        for t, low, p in zip(total, lowp, model.parameters()):
            if p.grad is not None:
                t += p.grad.float()
                low += p.grad
                p.grad = None
        logps[idx] = logp.detach().float()
    return torch.cat([t.flatten() for t in total]), torch.cat([t.flatten().float() for t in lowp]), logps


def compare(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Cosine, relative distance ||g - ref|| / ||ref||, and the share of elements (among those where
    either is non-zero) whose signs agree."""
    g, ref = g.double(), ref.double()  # fp32 sums over 135M elements drift past a cosine of 1
    nz = (g != 0) | (ref != 0)
    return {"cosine": float(torch.nn.functional.cosine_similarity(g, ref, dim=0)),
            "rel_dist": float((g - ref).norm() / ref.norm()),
            "sign_agree": float((torch.sign(g[nz]) == torch.sign(ref[nz])).float().mean())}


def main() -> None:
    import yaml
    from transformers import AutoModelForCausalLM

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--groups", type=int, default=4, help="groups per batch (the config's prompts_per_step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small-micro", type=int, default=2, help="rows per micro-batch of the second accumulation check")
    p.add_argument("--out", default=str(ROOT / "docs" / "precision.json"))
    args = p.parse_args()
    from rltrain.config.hardware import cpu_description
    from rltrain.toy.smollm2 import ensure_smollm2

    cfg = yaml.safe_load((ROOT / "configs" / "smollm2_gsm.yaml").read_text())
    rc = cfg["rollout"]
    torch.manual_seed(args.seed)
    model_dir = str(ensure_smollm2())
    t0 = time.perf_counter()
    a, b = sample_batches(model_dir, args.prompts, args.seed, rc["n_samples"], rc["temperature"],
                               rc["max_new_tokens"], args.groups)
    grads, logps, accum = {}, {}, {}
    micro = cfg["learner"]["micro_batch_size"]
    for dt in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").to(dt)
        for name, batch in (("A", a), ("B", b)):
            grads[name, dt], low, logps[name, dt] = gradient(model, batch, micro, rc["temperature"])
            if dt == torch.bfloat16:
                accum[f"bf16_sum_vs_fp32_sum_{name}_micro{micro}"] = compare(low, grads[name, dt])
                g32, g16, _ = gradient(model, batch, args.small_micro, rc["temperature"])
                accum[f"bf16_sum_vs_fp32_sum_{name}_micro{args.small_micro}"] = compare(g16, g32)
        del model
    mask = {"A": a.response_mask, "B": b.response_mask}
    gap = lambda n: float(((logps[n, torch.bfloat16] - logps[n, torch.float32]).abs() * mask[n]).sum()  # noqa: E731
                          / mask[n].sum())
    result = {"cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"), "seed": args.seed,
              "rows_per_batch": len(a), "seconds": round(time.perf_counter() - t0),
              "bf16_vs_fp32_A": compare(grads["A", torch.bfloat16], grads["A", torch.float32]),
              "bf16_vs_fp32_B": compare(grads["B", torch.bfloat16], grads["B", torch.float32]),
              "fp32_A_vs_fp32_B": compare(grads["B", torch.float32], grads["A", torch.float32]),
              "logp_gap_A": gap("A"), "logp_gap_B": gap("B"), **accum}
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
