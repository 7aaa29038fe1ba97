"""What a validated run config implies at run time: the engines' dtype and options (the weight-sync
method is the placement plan's: rltrain/workers/planner.py).

Kept apart from the schema (schema.py) so that file holds the sections only.
"""

from __future__ import annotations

from typing import Any

from rltrain.config.schema import Config


def engine_options(cfg: Config, resolved_name: str) -> dict[str, Any]:
    """The constructor options of the engine `resolved_name` (`auto` already resolved):
    `rollout.vllm` / `rollout.transformers` for those engines, else `rollout.engine_options`."""
    section = {"vllm": cfg.rollout.vllm, "transformers": cfg.rollout.transformers}.get(resolved_name)
    return section.model_dump() if section is not None else dict(cfg.rollout.engine_options)


def engine_dtype(cfg: Config) -> str:
    """The rollout engines' precision: `rollout.dtype`, or the model's when `auto`."""
    return cfg.model.dtype if cfg.rollout.dtype == "auto" else cfg.rollout.dtype
