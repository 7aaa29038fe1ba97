"""envs/: multi-turn environments: the protocol (`base.Environment`), the registry, the built-in
toy search environment (`search`).

`env.name` takes a registered name or an import path `pkg.mod:Class`; `env.options` reach the
constructor as keyword arguments. May import: rltrain.data. Never Ray, workers, engines or driver.
"""

from __future__ import annotations

import importlib

from rltrain.envs.base import Environment, EnvError, StepResult, Turn

ENVS: dict[str, str] = {"search": "rltrain.envs.search:SearchEnv"}

__all__ = ["ENVS", "Environment", "EnvError", "StepResult", "Turn", "check_env_name", "env_class"]


def check_env_name(name: str) -> None:
    if name in ENVS or (isinstance(name, str) and name.count(":") == 1 and all(name.split(":"))):
        return
    raise ValueError(f"unknown environment {name!r}; allowed: {', '.join(ENVS)} (or an import path pkg.mod:Class)")


def env_class(name: str) -> type:
    check_env_name(name)
    target = ENVS.get(name, name)
    mod, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"env.name={name!r}: cannot import {target!r}: {e}") from None
    missing = [m for m in ("reset", "step", "score") if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"env.name={name!r}: {target} does not follow the environment protocol "
                         f"(rltrain.envs.base.Environment): missing {', '.join(missing)}")
    return cls
