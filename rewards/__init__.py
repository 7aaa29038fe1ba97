"""rewards: reward functions and verifiers for RL post-training, usable with no trainer at all.

Every reward has TRL's signature ``fn(prompts, completions, **columns) -> list[float | None]``
(None = no score). ``load(name_or_import_path, **params)`` returns one wrapped in a guard: each
sample has a time limit (``timeout_s``) and failures become the ``fallback`` score (default None),
never an exception. Importing this package imports only the standard library.

>>> import rewards
>>> math = rewards.load("math")
>>> math(["1+1?"], ["so the answer is \\\\boxed{2}"], answer=["2"])
[1.0]
"""

from .adapters import to_single, to_verl, to_verl_batch, verl_compute_score
from .combine import Combined, combine
from .guard import Reward
from .noisy import NoisyVerifierCorrection, backward_correction, forward_correction
from .registry import GUARD_OPTIONS, available, from_config, load, register, wrap

__all__ = [
    "GUARD_OPTIONS", "Combined", "NoisyVerifierCorrection", "Reward", "available", "backward_correction",
    "combine", "forward_correction", "from_config", "load", "register", "to_single", "to_verl",
    "to_verl_batch", "verl_compute_score", "wrap",
]
