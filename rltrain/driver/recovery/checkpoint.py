"""Checkpoints: learner state (DeepSpeed), step, schedule state (data cursor), RNG, algorithm state,
weight version.

A checkpoint is written into `step_<k>.tmp/`, its files fsynced, a `manifest.json` (every file's
size and SHA-256) and a `COMPLETE` marker added, and only then renamed to `step_<k>/` (the parent
directory fsynced too), so a crash mid-save never leaves a checkpoint that looks whole; older
complete checkpoints are pruned only after the new one is in place. A save that fails (a full disk)
removes its temporary directory and raises `CheckpointError` naming the path; the previous
checkpoint is untouched. `latest()` verifies the manifest and falls back to the previous checkpoint,
with a message, when the newest is corrupt or half-written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import shutil
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

MARKER = "COMPLETE"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or one found on disk does not match its manifest."""


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(ckpt_root: Path, step: int, groups: dict[str, Any], trainer_state: dict[str, Any], keep: int) -> Path:
    """`groups`: the RankGroups that hold trained weights by name ("learner", "critic"); every rank
    of each writes its DeepSpeed state under the checkpoint's directory of that name."""
    final = ckpt_root / f"step_{step}"
    tmp = ckpt_root / f"step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, group in groups.items():
            group.call("save", str(tmp / name))
        buf = io.BytesIO()
        torch.save(trainer_state, buf)  # serialised in memory: a failing write then raises OSError
        (tmp / "trainer_state.pt").write_bytes(buf.getvalue())
        manifest = {str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                    for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        (tmp / MARKER).write_text(str(step))
        _fsync_tree(tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest(ckpt_root, check=False)
        raise CheckpointError(f"could not write the checkpoint of step {step} to {tmp}: {e.strerror or e} "
                              f"({getattr(e, 'filename', None) or tmp}); "
                              + (f"the previous checkpoint {prev} is intact" if prev else "no earlier checkpoint exists")
                              ) from e
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(ckpt_root)
    for old in complete_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(d)


def verify(ckpt: Path) -> None:
    """Raise CheckpointError unless every file of the manifest is there with its size and hash."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt}: no readable {MANIFEST} ({e})") from None
    for rel, want in manifest.items():
        p = ckpt / rel
        if not p.is_file():
            raise CheckpointError(f"{ckpt}: {rel} is missing")
        if p.stat().st_size != want["size"] or _sha256(p) != want["sha256"]:
            raise CheckpointError(f"{ckpt}: {rel} does not match the manifest (size or SHA-256): corrupt")


def complete_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not ckpt_root.exists():
        return []
    found = [p for p in ckpt_root.glob("step_*") if p.is_dir() and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest(ckpt_root: Path, check: bool = True) -> Path | None:
    """The newest complete checkpoint that matches its manifest (older ones are tried in turn, with a
    message for each one passed over)."""
    for ckpt in reversed(complete_checkpoints(ckpt_root)):
        if not check:
            return ckpt
        try:
            verify(ckpt)
            return ckpt
        except CheckpointError as e:
            print(f"[rltrain] passing over a bad checkpoint: {e}", flush=True)
    return None


def load(ckpt: Path, groups: dict[str, Any]) -> dict[str, Any]:
    for name, group in groups.items():
        if not (ckpt / name).is_dir():
            raise CheckpointError(f"{ckpt} has no {name!r} state (was it written by a run without a {name}?)")
        group.call("load", str(ckpt / name))
    return torch.load(ckpt / "trainer_state.pt", weights_only=False, pickle_module=_moved_modules_pickle)


# driver modules moved into rooms (driver/flow, recovery, reporting): objects a checkpoint written before the
# move pickled under the old module path (partial rollouts' records, the replay buffer's) load from the new one
_MOVED = {f"rltrain.driver.{old}": f"rltrain.driver.{new}" for old, new in {
    **{m: f"flow.{m}" for m in ("chat_check", "collector", "evaluation", "gt_probs", "multiturn", "partial", "replay",
                               "rewards", "rollout", "schedules")},
    **{m: f"recovery.{m}" for m in ("checkpoint", "preemption")}, "recovery": "recovery.restart",
    **{m: f"reporting.{m}" for m in ("progress", "report", "tracking")}}.items()}


class _MovedModulesUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED.get(module, module), name)


_moved_modules_pickle = types.SimpleNamespace(__name__="pickle", Unpickler=_MovedModulesUnpickler,
                                              load=pickle.load, loads=pickle.loads)
