"""launch/bench/device_check.py --smoke: every part of the GPU device check runs on the CPU at toy sizes,
in a subprocess (the script blocks ray, vllm and deepspeed, so the run also shows that none of its
imports needs them), and writes a JSON with every part's finite figures outside docs/."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "launch" / "bench" / "device_check.py"
PARTS = ("engine_decode", "learner_precision", "train_throughput", "presets", "bucket_packing")


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_smoke_run_writes_every_part(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["device_type"] == "cpu" and result["device"].startswith("cpu")
    assert result["torch"] and result["transformers"] and result["date"]
    for part in PARTS:
        figures = result[part]
        assert "error" not in figures and "skipped" not in figures, (part, figures)
        numbers = list(_numbers(figures))
        assert numbers and all(math.isfinite(x) for x in numbers), part
        assert figures["seconds"] > 0

    decode = result["engine_decode"]
    assert decode["parameters_on_device"] is True
    assert decode["bf16_lean_same_seed_same_tokens"] is True and decode["bf16_generate_same_seed_same_tokens"] is True
    assert decode["fp32_greedy_device_vs_cpu_rows_equal"] == 1.0  # the device is the CPU here
    assert decode["bf16_lean_tokens_per_s"] > 0 and decode["bf16_generate_tokens_per_s"] > 0

    precision = result["learner_precision"]
    assert precision["fp32_micro_vs_whole"]["rel_dist"] < 1e-5  # the loss is normalised globally
    assert 0.99 < precision["bf16_vs_fp32"]["cosine"] <= 1.0 + 1e-12
    for dtype in ("bf16", "fp32"):
        assert result["train_throughput"][dtype]["tokens_per_s"] > 0

    import algorithms

    presets = result["presets"]
    assert set(presets) - {"seconds"} == (set(algorithms.PRESETS) - {"forking"}) | {"dapo+forking"}
    for name, figures in presets.items():
        if name == "seconds":
            continue
        # device == CPU: the same computation twice, so exactly equal; micro-batches: equal up to rounding
        assert figures["loss_rel_diff"] == 0.0 and figures["grad_rel_diff"] == 0.0, name
        assert figures["micro_loss_rel_diff"] < 1e-5 and figures["micro_grad_rel_diff"] < 1e-5, name
        assert figures["grad_norm_cpu"] > 0, name  # every preset's batch carries a gradient

    buckets = result["bucket_packing"]
    assert buckets["buckets"] > 1 and buckets["unpacked_equal"] is True
    assert buckets["buffers_on_device"] is True and buckets["views_on_device"] is True


def test_smoke_figures_never_go_to_docs():
    target = ROOT / "docs" / "gpu.json"  # a GPU run's figures, when there are some: left as they are
    before = target.read_bytes() if target.exists() else None
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(target)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and "do not go to docs/" in proc.stderr
    assert (target.read_bytes() if target.exists() else None) == before
