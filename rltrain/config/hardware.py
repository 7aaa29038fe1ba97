"""What this machine computes fast, for `model.dtype: auto`.

bfloat16 pays where the hardware multiplies bf16 matrices faster than float32: a CUDA GPU, or a CPU
whose bf16 instructions are fast. The flags alone do not tell: among 2-core machines with AVX-512 BF16
and no AMX, one ran bf16 matrix products at 0.55x of float32's speed and another (AMD EPYC, Zen 4) at
2.6x (docs/benchmarks.md, "Speed at the machine's limit"). So on a CPU with bf16 instructions `auto`
times both on the shapes a small model's learner and decode loop use, once per process (~0.2 s),
and picks bfloat16 where it is at least `BF16_MIN_SPEEDUP` times faster; without them (bf16 would be
emulated) it is float32.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

BF16_MIN_SPEEDUP = 1.2  # bf16 also costs precision (the engine-vs-learner log-prob gap): only for a clear win
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The `flags` of /proc/cpuinfo (or of the text given); empty where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_description(cpuinfo: str | None = None) -> str:
    """'<model name>, family F model M, <bf16 flags>' of the first CPU, for benchmark records."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    bf16 = [f for f in BF16_FLAGS if f in cpu_flags(cpuinfo)] or ["no bf16 instructions"]
    return (f"{fields.get('model name', 'unknown')}, family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {' '.join(bf16)}")


@functools.lru_cache(maxsize=1)
def matmul_seconds() -> dict[str, float]:
    """Seconds (best of 5 after a warm-up) of one learner-shaped matrix product (2048 x 576 @ 576 x 1536)
    plus 16 decode-shaped ones (32 x 576 @ 576 x 1536), in bfloat16 and float32, on this process's threads."""
    import torch

    out = {}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        gen = torch.Generator().manual_seed(0)
        big, small = torch.randn(2048, 576, generator=gen), torch.randn(32, 576, generator=gen)
        big, small, w = big.to(dtype), small.to(dtype), torch.randn(576, 1536, generator=gen).to(dtype)

        def work() -> None:
            big @ w
            for _ in range(16):
                small @ w

        work()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            work()
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    return out


def fast_dtype(cpuinfo: str | None = None, has_gpu: bool | None = None,
               seconds: dict[str, float] | None = None) -> str:
    """"bfloat16" with a CUDA GPU, or on a CPU with bf16 instructions where bf16 matrix products are at
    least BF16_MIN_SPEEDUP times faster than float32 (`seconds`: as `matmul_seconds()` returns; timed
    here when not given), else "float32"."""
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    if has_gpu:
        return "bfloat16"
    if not any(flag in cpu_flags(cpuinfo) for flag in BF16_FLAGS):
        return "float32"
    seconds = seconds if seconds is not None else matmul_seconds()
    return "bfloat16" if seconds["float32"] >= BF16_MIN_SPEEDUP * seconds["bfloat16"] else "float32"
