"""What an algorithm's stages need from the run besides themselves, applied when the config is loaded.

Some methods are defined by how their data is produced, not only by their loss:

- ReMix (Liang et al., arXiv 2507.06892, Alg. 1) trains on a mix of fresh and replayed off-policy groups
  with more than one update per batch; on fresh on-policy data alone its objective is a plain clipped
  ratio. Its objective (`objective: remix`) therefore brings `trainer.schedule: replay` (whose defaults,
  `replay.*`, are the paper's: 40% replayed, 2 updates per batch, the last 2 policies).
- IGPO (Wang et al., arXiv 2510.14967) rewards each turn of a multi-turn episode by the information gain
  on the ground-truth answer; on single-turn rollouts its advantage is GRPO's. Its advantage
  (`advantage: igpo`) needs a multi-turn environment (`env.name`), which depends on the task and data,
  so there is no default to bring: the run refuses to start.

A need is keyed by the stage (kind, name) that has it, so a preset, a composition (`remix+forking`) and
a stage override (`algorithm.objective.name=remix`) all get it. `config_layer` returns the settings to
put between the schema's defaults and the user's YAML and overrides; a setting the user gave that
contradicts a need is a `ConfigError` naming both keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rltrain.config.errors import ConfigError

__all__ = ["NEEDS", "Need", "config_layer"]


@dataclass(frozen=True)
class Need:
    """Settings a stage needs: `brings` are set unless the user set them (then they must agree, unless
    the value is an import path: a user's own schedule is trusted); `requires` must be set by the user."""

    why: str
    brings: dict[str, Any] = field(default_factory=dict)
    requires: dict[str, str] = field(default_factory=dict)  # dotted key -> what to set, for the message


NEEDS: dict[tuple[str, str], Need] = {
    ("objective", "remix"): Need(
        why="ReMix learns from replayed off-policy groups with several updates per batch",
        brings={"trainer.schedule": "replay"}),
    ("advantage", "igpo"): Need(
        why="IGPO's turn rewards are the information gain of each turn of a multi-turn episode",
        requires={"env.name": "a multi-turn environment, e.g. --config configs/igpo_search.yaml"}),
}


def _get(tree: dict[str, Any], dotted: str) -> Any:
    cur: Any = tree
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    cur = tree
    for part in parents:
        cur = cur.setdefault(part, {})
    cur[last] = value


def config_layer(user: dict[str, Any]) -> dict[str, Any]:
    """The settings the algorithm named in `user` (YAML + overrides, nested) brings; `ConfigError` when the
    user's settings contradict a need or leave a required one unset. An invalid algorithm section is
    left for the schema's own check to report."""
    import algorithms

    spec = {k: v for k, v in (_get(user, "algorithm") or {}).items() if v not in (None, {})}
    try:
        stages = algorithms.check(spec)
    except (algorithms.ConfigError, AttributeError, TypeError):
        return {}
    preset = spec.get("preset", "grpo")
    layer: dict[str, Any] = {}
    for kind, stage in stages.items():
        need = NEEDS.get((kind, stage.get("name")))
        if need is None:
            continue
        who = f"algorithm.preset={preset} (its {kind} stage {stage['name']!r})"
        for key, value in need.brings.items():
            given = _get(user, key)
            if given is None:
                _set(layer, key, value)
            elif given != value and not (isinstance(given, str) and ":" in given):
                raise ConfigError(f"{key}: {who} needs {key}={value} ({need.why}); got {given!r}")
        for key, what in need.requires.items():
            if _get(user, key) is None:
                raise ConfigError(f"{key}: {who} needs {key} set to {what} ({need.why})")
    return layer
