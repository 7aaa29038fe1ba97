"""Where an engine runs, decided in one place, and the one transfer of its results to the host.

Issue #28 (finding 3): an engine builds its model and every tensor of a call (inputs, KV cache,
random numbers, masks) on one torch device, and returns what it generated to the host once per call.

`resolve_device` is that one decision. Nothing asked: the first CUDA device when this process sees
one (a Ray actor sees only the GPUs it was given, so a GPU actor decodes on its GPU and an actor
kept from GPUs on the CPU), else the CPU. Asked for CUDA where no CUDA device is visible: an error,
never a silent fallback to the CPU (a run that asked for a GPU and got a CPU would only be slow).

`results_to_host` moves a call's (token ids, log-probs) to the host as Python lists in a single
device-to-host copy: both go in one float64 tensor (token ids below 2**53 and float32 log-probs are
exact in float64), instead of one copy per row or per tensor.
"""

from __future__ import annotations

import torch


def resolve_device(requested: str | torch.device | None = None, cuda_devices: int | None = None) -> torch.device:
    """The engine's device: `requested` ("cpu", "cuda", "cuda:N") checked against the CUDA devices this
    process sees (`cuda_devices`, default `torch.cuda.device_count()`), or the default when None (see the
    module docstring). A CUDA device comes back with its index ("cuda" -> cuda:0, the first visible one),
    so it compares equal to the `.device` of tensors placed on it."""
    count = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    if requested is None:
        requested = "cuda" if count > 0 else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise ValueError(f"engine device {requested!r} is not a torch device name: {e}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"engine device {requested!r}: the engines run on 'cpu' or 'cuda[:N]'")
    if count == 0:
        raise RuntimeError(f"engine device {requested!r} was asked for but this process sees no CUDA device "
                           f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}; "
                           f"CUDA_VISIBLE_DEVICES decides what a process sees). There is no fallback to the CPU: "
                           "ask for device 'cpu', or run where a GPU is visible (a GPU machine set up with "
                           "`make setup`, a Ray actor given num_gpus)")
    index = 0 if device.index is None else device.index
    if index >= count:
        raise RuntimeError(f"engine device {requested!r}: this process sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def results_to_host(tokens: torch.Tensor, logprobs: torch.Tensor) -> tuple[list[list[int]], list[list[float]]]:
    """(token ids, log-probs) of shape (B, S) as nested Python lists, in one device-to-host copy."""
    both = torch.stack([tokens.to(torch.float64), logprobs.to(torch.float64)]).cpu()
    return both[0].long().tolist(), both[1].tolist()
