"""Named algorithms as pure data over the seven stage kinds, and spec resolution.

A spec is {"preset": "a+b", <stage>: {"name": ..., **params}, ...}. Presets compose left to right
("dapo+forking": forking's stages overlay dapo's). A stage override with a "name" different from the
current one replaces the stage (its params start from the stage defaults); without "name" (or with the
same name) it updates the current stage's params.
"""

from __future__ import annotations

import copy
from typing import Any

from algorithms.registry import STAGE_KINDS, ConfigError

DEFAULT_STAGES: dict[str, dict[str, Any]] = {
    "data_policy": {"name": "all"},
    "advantage": {"name": "group"},
    "token_selector": {"name": "none"},
    "objective": {"name": "ppo_clip"},
    "regularizer": {"name": "none"},
    "aggregation": {"name": "token-mean"},
    "correction": {"name": "none"},
}

PRESETS: dict[str, dict[str, Any]] = {
    # GRPO (DeepSeekMath): group-std advantages, PPO clip 0.2, k3 KL to the reference, per-sequence mean
    "grpo": {"advantage": {"name": "group", "scale": "group"},
             "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2},
             "regularizer": {"name": "kl", "kind": "k3", "coef": 0.001},
             "aggregation": {"name": "seq-mean-token-mean"}},
    # Dr.GRPO: no std division, constant length normaliser, no KL
    "dr_grpo": {"advantage": {"name": "group", "scale": "none"},
                "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2},
                "aggregation": {"name": "seq-mean-token-sum-norm"}},
    # DAPO: clip-higher, dual clip 10, token-mean, dynamic sampling, soft overlong shaping (buffer 20% of max)
    "dapo": {"data_policy": {"name": "dynamic_sampling"},
             "advantage": {"name": "group", "scale": "group", "overlong_buffer_frac": 0.2, "overlong_factor": 1.0},
             "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.28, "dual_clip": 10.0},
             "aggregation": {"name": "token-mean"}},
    "gtpo": {"advantage": {"name": "gtpo", "threshold": 0.7, "scale": 0.1},
             "token_selector": {"name": "gtpo", "w_pos": 2.0, "reduce": "mean"},
             "objective": {"name": "gtpo", "ratio": "detached"},
             "aggregation": {"name": "seq-mean-token-mean"}},
    "dcpo": {"advantage": {"name": "dcpo"},
             "objective": {"name": "dcpo", "eps_low": 0.16, "eps_high": 0.2, "max_high": 10.0, "dual_clip": 10.0},
             "aggregation": {"name": "group-token-mean"}},
    # BAPO: the paper's search (positive share rho0 .4, c_high first); mode "code" is the official code's
    "bapo": {"advantage": {"name": "group"},
             "objective": {"name": "bapo", "target": 0.4, "low_start": 0.6, "low_max": 0.9, "low_step": 0.02,
                           "high_start": 1.2, "high_max": 3.0, "high_step": 0.05, "dual_clip": 3.0, "mode": "paper"},
             "aggregation": {"name": "token-mean"}},
    "pacs": {"advantage": {"name": "pacs", "threshold": 0.5},
             "objective": {"name": "pacs", "beta": 1.0, "baseline": "rloo", "weighting": "question"},
             "aggregation": {"name": "seq-mean-token-mean"}},
    "nsr": {"data_policy": {"name": "nsr"}, "advantage": {"name": "nsr", "mode": "nsr"},
            "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2}, "aggregation": {"name": "token-mean"}},
    "psr": {"data_policy": {"name": "psr"}, "advantage": {"name": "nsr", "mode": "psr"},
            "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2}, "aggregation": {"name": "token-mean"}},
    "w_reinforce": {"advantage": {"name": "nsr", "mode": "w-reinforce", "lam": 0.1},
                    "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2},
                    "aggregation": {"name": "token-mean"}},
    "gspo": {"advantage": {"name": "group"},
             "objective": {"name": "gspo", "low": 1.0 - 3e-4, "high": 1.0 + 4e-4},
             "aggregation": {"name": "seq-mean-token-mean"}},
    # ReMix (algorithms/remix.py): behaviour ratio with the centred clip, KL-Convex with the lambda schedule,
    # reincarnation at step 50; run it with trainer.schedule=replay (fraction .4, 2 updates per batch, depth 2)
    "remix": {"advantage": {"name": "group"},
              "objective": {"name": "remix", "low": 0.8, "high": 1.2, "behaviour": "auto", "centred": True,
                            "reincarnate_at": 50},
              "regularizer": {"name": "remix_kl", "lam": 1.0, "lam_min": 0.5, "decay_start": 50, "decay_every": 10,
                              "decay_step": 0.1, "coef": 0.001, "kind": "k3"},
              "aggregation": {"name": "token-mean"}},
    "igpo": {"advantage": {"name": "igpo", "gamma": 1.0, "norm": "joint"},
             "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2},
             "regularizer": {"name": "kl", "kind": "k3", "coef": 0.001},
             "aggregation": {"name": "seq-mean-token-mean"}},
    # PPO with a critic (InstructGPT-style): GAE(1, .95) from the critic's values, the KL to the
    # reference in the reward per token (kl_coef), the outcome reward standardised by its running
    # moments (unit-scale critic targets for any reward model), PPO clip .2, token-mean; the critic is
    # started because the gae stage reads `values` (config section `critic`)
    "ppo": {"advantage": {"name": "gae", "gamma": 1.0, "lam": 0.95, "kl_coef": 0.01, "whiten": True,
                          "normalize_reward": True},
            "objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2},
            "regularizer": {"name": "none"},
            "aggregation": {"name": "token-mean"}},
    # overlay: "<preset>+forking"
    "forking": {"token_selector": {"name": "forking", "top_ratio": 0.2, "normaliser": "selected"}},
}


def overlay_stage(base: dict[str, Any] | None, over: Any, key: str) -> dict[str, Any]:
    """`over` applied on `base` with the name/params rule of the module docstring."""
    if not isinstance(over, dict):
        raise ConfigError(key, f"must be a mapping {{name: ..., **params}}, got {over!r}")
    if "name" in over and (base is None or over["name"] != base.get("name")):
        return dict(over)
    if base is None:
        raise ConfigError(f"{key}.name", "missing stage name")
    return {**base, **over}


def resolve_spec(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stage specs of `spec` (presets composed, overrides applied); errors name algorithm.* keys."""
    if not isinstance(spec, dict):
        raise ConfigError("algorithm", f"must be a mapping, got {spec!r}")
    allowed = ("preset",) + STAGE_KINDS
    for k in spec:
        if k not in allowed:
            raise ConfigError(f"algorithm.{k}", f"unknown key; allowed: {', '.join(allowed)}")
    preset = spec.get("preset", "grpo")
    if not isinstance(preset, str) or not preset:
        raise ConfigError("algorithm.preset", f"must be a preset name, got {preset!r}")
    stages = copy.deepcopy(DEFAULT_STAGES)
    for part in preset.split("+"):
        name = part.strip()
        if name not in PRESETS:
            raise ConfigError("algorithm.preset", f"unknown preset {name!r}; allowed: {', '.join(sorted(PRESETS))} "
                                                  "(compose with '+', e.g. 'dapo+forking')")
        for kind, over in PRESETS[name].items():
            stages[kind] = overlay_stage(stages[kind], copy.deepcopy(over), f"algorithm.{kind}")
    for kind in STAGE_KINDS:
        if kind in spec and spec[kind] is not None:
            stages[kind] = overlay_stage(stages[kind], copy.deepcopy(spec[kind]), f"algorithm.{kind}")
    return stages
