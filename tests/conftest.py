"""Session-wide fixtures: one Ray session and one warm-started default model for all e2e tests."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        # actors import user parts named by import path (tests/e2e/rltrain_user_parts.py) like a user's package
        parts = str(Path(__file__).resolve().parent / "e2e")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (parts, os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def default_model() -> str:
    from rltrain.toy.warm_start import ensure_default_model

    return str(ensure_default_model())
