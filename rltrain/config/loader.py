"""A small typed-config mechanism: nested dataclasses <- plain dicts <- YAML <- command line.

The schema is ordinary dataclasses (see `rltrain.config`). This module only knows how to:

- `from_dict(cls, data)`: build the dataclass tree from plain dicts, checking every value against
  the field's type annotation and calling each dataclass's own `validate()` (bottom-up);
- `to_dict(cfg)`: the inverse (round-trips with `from_dict`);
- `parse_overrides(argv)`: `--a.b=1`, `--a.b 1` and bare `a.b=1` (the form W&B sweep agents pass)
  into a nested dict, values parsed as YAML;
- `load_config(cls, yaml_path, overrides)`: defaults <- YAML file <- overrides, then `from_dict`.

Every problem raises `ConfigError` (a `ValueError`) naming the dotted key, what was expected and
what was given; unknown keys list the allowed keys and suggest the closest one.

YAML is read with YAML-1.2-style scalars: `1e-5` is a float (PyYAML alone reads it as a string)
and only `true`/`false` are booleans (`on`, `off`, `yes`, `no` stay strings).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key is unknown, has a value of the wrong type, or fails a constraint."""


def check(cond: bool, key: str, msg: str) -> None:
    """Raise `ConfigError("<key>: <msg>")` unless `cond` holds (for `validate()` methods)."""
    if not cond:
        raise ConfigError(f"{key}: {msg}")


# ----------------------------------------------------------------------------------------------
# YAML with 1.2-style floats and booleans


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats accept `1e-5` and whose booleans are only true/false."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _FLOAT_TAG)]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """Parse one command-line value as YAML (`1e-5` -> float, `[1,2]` -> list, `null` -> None);
    text that is not valid YAML stays a string."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        return text


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML config file; it must hold a mapping (an empty file is `{}`)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: the top level must be a mapping of config sections, "
            f"got {type(data).__name__}: {_short(data)}"
        )
    return dict(data)


# ----------------------------------------------------------------------------------------------
# dict -> dataclass


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _type_error(path: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(
        f"{path or '<root>'}: expected {_type_name(tp)}, got {type(value).__name__} {_short(value)}"
    )


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations (works with `from __future__ import annotations`)."""
    if cls not in _HINTS:
        try:
            _HINTS[cls] = typing.get_type_hints(cls)
        except (NameError, TypeError):  # unresolvable forward refs: fall back to raw annotations
            _HINTS[cls] = {f.name: f.type for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check/convert `value` against the annotation `tp`; `path` names it in errors."""
    if tp is Any or tp is object:
        return value
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _type_error(path, tp, value)
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, path)
        for option in options:
            try:
                return _convert(option, value, path)
            except ConfigError:
                continue
        raise _type_error(path, tp, value)
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if type(value) is type(a) and value == a:
                return a
        raise ConfigError(
            f"{path}: invalid value {_short(value)}; allowed values: "
            + ", ".join(repr(a) for a in allowed)
        )
    if value is None:
        raise _type_error(path, tp, value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _type_error(path, tp, value)
        return from_dict(tp, value, path)
    if tp is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(path, tp, value)
        (elem,) = get_args(tp) or (Any,)
        return [_convert(elem, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(path, tp, value)
        key_tp, val_tp = get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            if key_tp is str and not isinstance(k, str):
                raise ConfigError(f"{path}: keys must be strings, got {type(k).__name__} {k!r}")
            out[k] = _convert(val_tp, v, _join(path, k))
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _type_error(path, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(path, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(path, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. `--trainer.run_name=2024` parsed as an int
        raise _type_error(path, tp, value)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _type_error(path, tp, value)
    return value  # an annotation we do not understand: accept as is


def _unknown_key(path: str, key: Any, allowed: list[str]) -> ConfigError:
    full = _join(path, key)
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{_join(path, close[0])}'?)" if close else ""
    where = f"under '{path}'" if path else "at the top level"
    return ConfigError(f"unknown key '{full}'{hint}; allowed keys {where}: {', '.join(allowed)}")


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass `cls` from a (nested) plain dict, type-checking every value.

    Missing keys take the field defaults; unknown keys, wrong types and missing required keys raise
    `ConfigError` with the dotted key (`path` prefixes it). After construction, the instance's own
    `validate()` is called when it defines one (nested sections are validated first).
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise _type_error(path, cls, data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _unknown_key(path, key, list(fields))
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints.get(name, Any), data[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{_join(path, name)}'")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(cfg: Any) -> Any:
    """Dataclass tree -> plain dicts/lists (round-trips with `from_dict`)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return copy.deepcopy(cfg)


# ----------------------------------------------------------------------------------------------
# overrides and merging


_KEY_RE = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+)*$")


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """`set_dotted(d, "a.b.c", v)` sets `d["a"]["b"]["c"] = v`, creating dicts on the way.

    A numeric segment indexes an existing list (`reward.functions.0.weight`). Descending into a
    value that is neither a dict nor a list raises `ConfigError` naming the key.
    """
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"invalid key '{key}'")
    cur: Any = d
    for i, part in enumerate(parts[:-1]):
        prefix = ".".join(parts[: i + 1])
        if isinstance(cur, list):
            cur = cur[_index(cur, part, prefix)]
            continue
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, (dict, list)):
            raise ConfigError(
                f"cannot set '{key}': '{prefix}' is a {type(nxt).__name__} ({_short(nxt)}), "
                "not a section"
            )
        cur = nxt
    if isinstance(cur, list):
        cur[_index(cur, parts[-1], key)] = value
    else:
        cur[parts[-1]] = value


def _is_index(key: Any) -> bool:
    return (isinstance(key, int) and not isinstance(key, bool)) or (isinstance(key, str) and key.isdigit())


def _index(lst: list, key: Any, path: str) -> int:
    if not _is_index(key):
        raise ConfigError(f"'{path}': a list needs a numeric index, got '{key}'")
    i = int(key)
    if not 0 <= i < len(lst):
        raise ConfigError(f"'{path}': index {i} out of range (the list has {len(lst)} items)")
    return i


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Command-line overrides -> nested dict.

    Accepts `--a.b=1`, `--a.b 1` and bare `a.b=1`; values are parsed as YAML (`1e-5` is a float,
    `[0.9,0.95]` a list, `null` None). Anything else raises `ConfigError` naming the arguments.
    """
    out: dict[str, Any] = {}
    bad: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("--"):
            body = arg[2:]
            if "=" in body:
                key, raw = body.split("=", 1)
            else:
                key = body
                if i >= len(argv) or (argv[i].startswith("--") and _KEY_RE.match(argv[i][2:].split("=")[0])):
                    raise ConfigError(f"missing value for '{arg}' (use {arg}=VALUE or {arg} VALUE)")
                raw = argv[i]
                i += 1
        elif "=" in arg and not arg.startswith("-"):
            key, raw = arg.split("=", 1)
        else:
            bad.append(arg)
            continue
        if not _KEY_RE.match(key):
            bad.append(arg)
            continue
        set_dotted(out, key, parse_value(raw))
    if bad:
        raise ConfigError(
            "not a config override: " + ", ".join(repr(a) for a in bad)
            + " (expected --section.key=value, --section.key value or section.key=value)"
        )
    return out


def _expand(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A dict of overrides whose top-level keys may be dotted -> nested dict."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        tmp: dict[str, Any] = {}
        set_dotted(tmp, str(key), value)
        out = merge(out, tmp)
    return out


def merge(base: Any, over: Any, path: str = "") -> Any:
    """Deep merge `over` into a copy of `base`: mappings merge key by key, a mapping with numeric
    keys updates items of a list, anything else replaces."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, _join(path, k)) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, Mapping) and over and all(_is_index(k) for k in over):
        out_list = list(base)
        for k, v in over.items():
            i = _index(out_list, k, _join(path, k))
            out_list[i] = merge(out_list[i], v, _join(path, k))
        return out_list
    return copy.deepcopy(over)


def load_config(
    cls: type[T], yaml_path: str | None = None, overrides: list[str] | Mapping[str, Any] | None = None
) -> T:
    """Defaults <- YAML file <- overrides (deep merge), then `from_dict` (+ every `validate()`).

    `overrides` is a command-line list (see `parse_overrides`) or a dict, nested or with dotted
    keys (`{"trainer.steps": 3}`).
    """
    try:
        data: Any = to_dict(cls())
    except TypeError:  # the schema has required fields: start from nothing
        data = {}
    if yaml_path:
        data = merge(data, load_yaml(yaml_path))
    if overrides:
        if isinstance(overrides, Mapping):
            over = _expand(overrides)
        elif isinstance(overrides, (list, tuple)):
            over = parse_overrides(list(overrides))
        else:
            raise TypeError(f"overrides must be a list of strings or a dict, got {type(overrides).__name__}")
        data = merge(data, over)
    return from_dict(cls, data)


__all__ = [
    "ConfigError",
    "check",
    "from_dict",
    "load_config",
    "load_yaml",
    "merge",
    "parse_overrides",
    "parse_value",
    "set_dotted",
    "to_dict",
]
