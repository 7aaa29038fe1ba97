"""Checkpoints: learner state (DeepSpeed), step, schedule state (data cursor), RNG, algorithm state,
weight version.

A checkpoint is written into `step_<k>.tmp/` and renamed to `step_<k>/` only after every part is
on disk and a `COMPLETE` marker exists, so a crash mid-save never leaves a checkpoint that looks
whole; older complete checkpoints are pruned only after the new one is in place.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

MARKER = "COMPLETE"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(ckpt_root: Path, step: int, learners, trainer_state: dict[str, Any], keep: int) -> Path:
    """`learners` is the learner RankGroup (every rank writes its DeepSpeed state)."""
    final = ckpt_root / f"step_{step}"
    tmp = ckpt_root / f"step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    learners.call("save", str(tmp / "learner"))
    torch.save(trainer_state, tmp / "trainer_state.pt")
    (tmp / MARKER).write_text(str(step))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not ckpt_root.exists():
        return []
    found = [p for p in ckpt_root.glob("step_*") if p.is_dir() and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest(ckpt_root: Path) -> Path | None:
    done = complete_checkpoints(ckpt_root)
    return done[-1] if done else None


def load(ckpt: Path, learners) -> dict[str, Any]:
    learners.call("load", str(ckpt / "learner"))
    return torch.load(ckpt / "trainer_state.pt", weights_only=False)
