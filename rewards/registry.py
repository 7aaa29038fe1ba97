"""Find rewards by name or import path: ``load("math", timeout_s=5)``, ``from_config(...)``."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Callable

from .guard import Reward

__all__ = ["GUARD_OPTIONS", "available", "from_config", "load", "register", "wrap"]

#: keyword arguments of ``load`` that configure the guard, not the reward itself
GUARD_OPTIONS = ("timeout_s", "fallback", "isolation", "workers", "worker_memory_mb", "score_range")

# name -> (import path of the reward class, guard defaults)
_REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    "math": ("rewards.math_reward:MathReward", {"isolation": "process", "timeout_s": 10.0, "worker_memory_mb": 4096}),
    "exact_match": ("rewards.exact_match:ExactMatchReward", {"isolation": "inline", "timeout_s": 10.0}),
    "format": ("rewards.format_reward:FormatReward", {"isolation": "process", "timeout_s": 5.0, "worker_memory_mb": 2048}),
    "overlong": ("rewards.overlong:OverlongReward", {"isolation": "inline", "timeout_s": 10.0}),
    "code": ("rewards.code_reward:CodeReward", {"isolation": "thread", "timeout_s": 60.0}),
    "reward_model": ("rewards.reward_model:RewardModelReward", {"isolation": "inline", "timeout_s": 600.0}),
    "remote": ("rewards.remote:RemoteReward", {"isolation": "inline", "timeout_s": 60.0}),
}
_IMPORT_PATH_DEFAULTS: dict[str, Any] = {"isolation": "process", "timeout_s": 30.0}


def available() -> list[str]:
    """Names ``load`` accepts (besides import paths)."""
    return sorted(_REGISTRY) + ["combine", "noisy", "noisy_channel"]


def register(name: str, target: str | Callable[..., Any], **guard_defaults: Any) -> None:
    """Add a named reward: ``target`` is an import path ("pkg.mod:obj") or the object itself."""
    bad = set(guard_defaults) - set(GUARD_OPTIONS)
    if bad:
        raise ValueError(f"unknown guard options {sorted(bad)}; allowed: {list(GUARD_OPTIONS)}")
    if not isinstance(target, str):
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[name] = (target, dict(guard_defaults))


def _import(path: str) -> Any:
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"not an import path: {path!r} (use 'package.module:name')")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _build(obj: Any, params: dict[str, Any], name: str) -> Callable[..., Any]:
    if inspect.isclass(obj):
        try:
            return obj(**params)
        except TypeError as exc:
            sig = inspect.signature(obj)
            raise ValueError(f"bad parameters for reward {name!r}: {exc}; it takes {sig}") from exc
    if not callable(obj):
        raise ValueError(f"{name!r} is not callable")
    if params:
        fn = functools.partial(obj, **params)
        fn.__name__ = getattr(obj, "__name__", name)  # type: ignore[attr-defined]
        fn.__module__ = getattr(obj, "__module__", None)  # type: ignore[attr-defined]
        if getattr(obj, "score_range", None) is not None:
            fn.score_range = obj.score_range  # type: ignore[attr-defined]
        return fn
    return obj


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    guard = {k: params[k] for k in GUARD_OPTIONS if k in params}
    rest = {k: v for k, v in params.items() if k not in GUARD_OPTIONS}
    return guard, rest


def wrap(fn: Callable[..., Any], **guard: Any) -> Reward:
    """Guard any reward callable (per-sample ``timeout_s``, ``fallback``...; see ``Reward``)."""
    if isinstance(fn, Reward):
        return fn
    opts = {**_IMPORT_PATH_DEFAULTS, **guard}
    return Reward(fn, **opts)


def load(name: str | Callable[..., Any], **params: Any) -> Reward:
    """A guarded reward callable ``fn(prompts, completions, **columns) -> list[float | None]``.

    ``name`` is a built-in name (see ``available()``), an import path ("pkg.mod:fn" or
    "pkg.mod:RewardClass"), or a callable. ``params`` go to the reward (class constructor, or
    bound with functools.partial for a function), except the guard options ``timeout_s``
    (per-sample limit, seconds), ``fallback`` (score of a failed sample, default None),
    ``isolation`` ("process" | "thread" | "inline"), ``workers``, ``worker_memory_mb`` and
    ``score_range`` (``(low, high)``: a score outside it is dropped and counted; default: the
    reward's own ``score_range`` attribute, else unbounded).

    Special names: ``"combine"`` with ``rewards=[config, ...]`` (each config as for
    ``from_config``, with an optional ``weight``) and ``missing``; ``"noisy"`` with
    ``reward=config``, ``fp_rate``, ``fn_rate``, ``mode`` ("backward" | "forward"), ``threshold``;
    ``"noisy_channel"`` with ``reward=config``, ``fp_rate``, ``fn_rate``, ``seed``, ``threshold``
    (corrupts the inner binary reward, for noise experiments).
    """
    guard, rest = _split(params)
    if callable(name) and not isinstance(name, str):
        return wrap(_build(name, rest, getattr(name, "__name__", "reward")), **guard)
    if not isinstance(name, str) or not name:
        raise ValueError(f"reward name must be a non-empty string or a callable, got {name!r}")
    if name == "combine":
        from .combine import combine

        configs = rest.pop("rewards", None)
        if not configs:
            raise ValueError("load('combine') needs rewards=[{'name': ..., 'weight': ...}, ...]")
        parts = [_weighted(c) for c in configs]
        return Reward(combine(parts, **rest), **{"isolation": "inline", **guard})
    if name in ("noisy", "noisy_channel"):
        from .noisy import NoisyChannel, NoisyVerifierCorrection

        inner = rest.pop("reward", None)
        if inner is None:
            raise ValueError(f"load({name!r}) needs reward=<name or config>")
        cls = NoisyVerifierCorrection if name == "noisy" else NoisyChannel
        return Reward(cls(from_config(inner), **rest), **{"isolation": "inline", **guard})
    if name in _REGISTRY:
        target, defaults = _REGISTRY[name]
        fn = _build(_import(target), rest, name)
        return Reward(fn, **{**defaults, "name": name, **guard})
    if ":" in name or "." in name:
        try:
            obj = _import(name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import reward {name!r}: {exc}") from exc
        return wrap(_build(obj, rest, name), **guard)
    raise ValueError(f"unknown reward {name!r}; built-in names: {available()}, or an import path 'pkg.mod:fn'")


def _weighted(cfg: Any) -> tuple[Reward, float]:
    if isinstance(cfg, (list, tuple)) and len(cfg) == 2 and isinstance(cfg[1], (int, float)):
        return from_config(cfg[0]), float(cfg[1])
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        weight = float(cfg.pop("weight", 1.0))
        return from_config(cfg), weight
    return from_config(cfg), 1.0


def from_config(cfg: Any) -> Reward:
    """Build a reward from config: a name/import path string; a dict ``{"name": ..., **params}``;
    or a list of such dicts with ``weight`` keys (a weighted combination)."""
    if isinstance(cfg, Reward):
        return cfg
    if isinstance(cfg, str) or callable(cfg):
        return load(cfg)
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        name = cfg.pop("name", None) or cfg.pop("reward", None)
        if name is None:
            raise ValueError(f"reward config needs a 'name': {cfg}")
        cfg.pop("weight", None)
        return load(name, **cfg)
    if isinstance(cfg, (list, tuple)):
        return load("combine", rewards=list(cfg))
    raise ValueError(f"cannot build a reward from {cfg!r}")
