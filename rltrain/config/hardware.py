"""What this machine computes fast, for `model.dtype: auto`.

bfloat16 pays where the hardware has bf16 matrix units: a CUDA GPU, or an x86 CPU with AMX-BF16
(Sapphire Rapids and later). A CPU with only AVX-512 BF16 runs bf16 matrix products slower than
float32 (measured on two kinds of 2-core machine: docs/benchmarks.md, "Speed at the machine's
limit"), so there `auto` is float32.
"""

from __future__ import annotations

from pathlib import Path


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


def fast_dtype(cpuinfo: str | None = None, has_gpu: bool | None = None) -> str:
    """"bfloat16" with a CUDA GPU or AMX-BF16 on the CPU, else "float32"."""
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    return "bfloat16" if has_gpu or "amx_bf16" in cpu_flags(cpuinfo) else "float32"
