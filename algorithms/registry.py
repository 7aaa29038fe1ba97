"""One registry per stage kind, typed stage parameters, and the config error type.

A stage is a class with a nested `Params` dataclass; its fields may carry `metadata` with "min", "max"
(inclusive), "gt"/"lt" (exclusive) and "choices". A stage can be named by a registered name or by an
import path "pkg.mod:attr" (a class following the same protocol).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from typing import Any, Callable

STAGE_KINDS = ("data_policy", "advantage", "token_selector", "objective", "regularizer", "aggregation",
               "correction")
REGISTRY: dict[str, dict[str, type]] = {kind: {} for kind in STAGE_KINDS}


class ConfigError(ValueError):
    """A bad algorithm spec; the message starts with the dotted key (e.g. "algorithm.objective.high")."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ParamError(ValueError):
    """Raised by a Params.validate() for one field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def register(kind: str, name: str) -> Callable[[type], type]:
    """Class decorator adding a stage to the `kind` registry under `name`."""
    def deco(cls: type) -> type:
        REGISTRY[kind][name] = cls
        return cls
    return deco


def resolve(kind: str, name: Any, key: str) -> type:
    """The stage class for a registered name or a "pkg.mod:attr" import path."""
    if not isinstance(name, str):
        raise ConfigError(key, f"must be a string, got {name!r}")
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(mod_name)
            for part in attr.split("."):  # "pkg.mod:Outer.Inner" reaches a nested object, as in rewards/
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ConfigError(key, f"cannot import {name!r}: {e}") from None
        return obj
    if name not in REGISTRY[kind]:
        allowed = ", ".join(sorted(REGISTRY[kind]))
        raise ConfigError(key, f"unknown {kind} {name!r}; allowed: {allowed} (or an import path pkg.mod:attr)")
    return REGISTRY[kind][name]


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, coerced value) for the simple annotation types stage params use."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _check_range(value: Any, meta: typing.Mapping) -> str | None:
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {', '.join(map(str, meta['choices']))}, got {value!r}"
    if value is None or not isinstance(value, (int, float)):
        return None
    for k, op, word in (("min", float.__ge__, ">="), ("max", float.__le__, "<="),
                        ("gt", float.__gt__, ">"), ("lt", float.__lt__, "<")):
        if k in meta and not op(float(value), float(meta[k])):
            return f"must be {word} {meta[k]}, got {value!r}"
    return None


def build_params(params_cls: type, values: dict[str, Any], key: str) -> Any:
    """Validated `params_cls` instance from a dict; errors name `key.<field>` and list allowed fields."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            allowed = ", ".join(["name"] + list(fields))
            raise ConfigError(f"{key}.{name}", f"unknown parameter; allowed: {allowed}")
        ok, value = _type_ok(value, hints[name])
        if not ok:
            raise ConfigError(f"{key}.{name}", f"expected {hints[name]}, got {value!r}")
        problem = _check_range(value, fields[name].metadata)
        if problem:
            raise ConfigError(f"{key}.{name}", problem)
        kwargs[name] = value
    params = params_cls(**kwargs)
    if hasattr(params, "validate"):
        try:
            params.validate()
        except ParamError as e:
            raise ConfigError(f"{key}.{e.field}", str(e)) from None
    return params


def make_stage(kind: str, spec: dict[str, Any], key: str) -> Any:
    """Instantiate a stage from {"name": ..., **params}."""
    if not isinstance(spec, dict):
        raise ConfigError(key, f"must be a mapping {{name: ..., **params}}, got {spec!r}")
    if "name" not in spec:
        raise ConfigError(f"{key}.name", "missing stage name")
    cls = resolve(kind, spec["name"], f"{key}.name")
    values = {k: v for k, v in spec.items() if k != "name"}
    params_cls = getattr(cls, "Params", None)
    if params_cls is None:
        try:
            stage = cls(**values)
        except TypeError as e:
            raise ConfigError(key, f"bad parameters for {spec['name']!r}: {e}") from None
    else:
        stage = cls(build_params(params_cls, values, key))
    stage.name = spec["name"]
    return stage


def meta(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """dataclasses.field with validation metadata (min, max, gt, lt, choices)."""
    return dataclasses.field(default=default, metadata=kw)
