"""envs/: multi-turn environments: the protocol (`base.Environment`), the registry, the built-in
toy search environments (`search`, multi-hop `search_chain`) and the code interpreter (`code`, running code in the rewards sandbox).

`env.name` takes a registered name or an import path `pkg.mod:Class`; `env.options` reach the
constructor as keyword arguments. May import: rltrain.data, rewards. Never Ray, workers, engines or driver.
"""

from __future__ import annotations

from rltrain.registry import check_name, load_class
from rltrain.envs.base import Environment, EnvError, StepResult, Turn

ENVS: dict[str, str] = {"search": "rltrain.envs.search:SearchEnv",
                        "search_chain": "rltrain.envs.search:ChainSearchEnv",
                        "code": "rltrain.envs.code_interpreter:CodeInterpreterEnv"}

__all__ = ["ENVS", "Environment", "EnvError", "StepResult", "Turn", "check_env_name", "env_class"]


def check_env_name(name: str) -> None:
    check_name(name, ENVS, "environment", ", ".join(ENVS))


def env_class(name: str) -> type:
    check_env_name(name)
    return load_class(name, ENVS, "env.name", ("reset", "step", "score"),
                      "environment protocol (rltrain.envs.base.Environment)")
