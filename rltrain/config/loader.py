"""Loading a pydantic config tree: defaults <- YAML file <- command-line overrides, with errors that
name the full dotted key.

The schema itself is pydantic models (see `rltrain.config.schema`); this module only:

- reads YAML with YAML-1.2-style scalars (`1e-5` is a float, only true/false are booleans);
- turns overrides (`--a.b=1`, `--a.b 1`, bare `a.b=1` as W&B sweep agents pass, or a dict with
  dotted keys) into a nested dict (`parse_overrides`, `set_dotted`) and deep-merges the layers;
- rejects renamed keys with a message naming the new key (`load_config(..., renamed=...)`);
- translates pydantic's `ValidationError` into `ConfigError` (`<full.key>: <problem>`, with the
  allowed keys and a did-you-mean hint for unknown keys; see `rltrain.config.errors`);
- `to_dict`: a config tree -> plain dicts/lists that round-trip through `load_config`.
"""

from __future__ import annotations

import copy
import errno
import re
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rltrain.config.errors import ConfigError, Section, short, translate

M = TypeVar("M", bound=BaseModel)


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
    """One command-line value as YAML (`1e-5` -> float, `[1,2]` -> list, `null` -> None); text that
    is not valid YAML stays a string."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        return text


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML config file as a dict (an empty file is `{}`); a missing file raises FileNotFoundError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "config file not found", path) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of config sections, "
                          f"got {type(data).__name__}: {short(data)}")
    return dict(data)


# ----------------------------------------------------------------------------------------------
# overrides and merging

_KEY_RE = re.compile(r"^[A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[\w-]+(?:\[\d+\])*)*$")


def _split_key(key: str) -> list[str]:
    """`reward.functions[0].weight` and `reward.functions.0.weight` -> its parts."""
    parts = re.sub(r"\[(\d+)\]", r".\1", key).split(".")
    if not all(parts):
        raise ConfigError(f"invalid key '{key}'")
    return parts


def _is_index(key: Any) -> bool:
    return (isinstance(key, int) and not isinstance(key, bool)) or (isinstance(key, str) and key.isdigit())


def _index(lst: list, key: Any, path: str) -> int:
    if not _is_index(key):
        raise ConfigError(f"{path}: a list needs a numeric index, got '{key}'")
    i = int(key)
    if not 0 <= i < len(lst):
        raise ConfigError(f"{path}: index {i} out of range (the list has {len(lst)} items)")
    return i


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """`set_dotted(d, "a.b.c", v)` sets `d["a"]["b"]["c"] = v`, creating dicts on the way.

    A numeric segment (`reward.functions.0.weight` or `reward.functions[0].weight`) indexes an
    existing list. Descending into a value that is neither a dict nor a list raises `ConfigError`.
    """
    parts = _split_key(key)
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
            raise ConfigError(f"{key}: cannot set, '{prefix}' is a {type(nxt).__name__} "
                              f"({short(nxt)}), not a section")
        cur = nxt
    if isinstance(cur, list):
        cur[_index(cur, parts[-1], key)] = value
    else:
        cur[parts[-1]] = value


def _split_arg(argv: list[str], i: int) -> tuple[str, str, int] | None:
    """The (key, raw value, next index) of the override at argv[i], or None if it is not one."""
    arg = argv[i]
    if arg.startswith("--"):
        body = arg[2:]
        if "=" in body:
            key, raw = body.split("=", 1)
            return key, raw, i + 1
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if nxt is None or (nxt.startswith("--") and _KEY_RE.match(nxt[2:].split("=")[0])):
            raise ConfigError(f"missing value for '{arg}' (use {arg}=VALUE or {arg} VALUE)")
        return body, nxt, i + 2
    if "=" in arg and not arg.startswith("-"):
        key, raw = arg.split("=", 1)
        return key, raw, i + 1
    return None


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Command-line overrides -> nested dict.

    Accepts `--a.b=1`, `--a.b 1` and bare `a.b=1`; values are parsed as YAML (`1e-5` is a float,
    `[0.9,0.95]` a list, `null` None). Anything else raises `ConfigError` naming the arguments.
    """
    out: dict[str, Any] = {}
    bad: list[str] = []
    i = 0
    while i < len(argv):
        parsed = _split_arg(argv, i)
        if parsed is None or not _KEY_RE.match(parsed[0]):
            bad.append(argv[i])
            i += 1
            continue
        key, raw, i = parsed
        set_dotted(out, key, parse_value(raw))
    if bad:
        raise ConfigError("not a config override: " + ", ".join(repr(a) for a in bad)
                          + " (expected --section.key=value, --section.key value or section.key=value)")
    return out


def _expand(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A dict of overrides whose keys may be dotted -> nested dict."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        tmp: dict[str, Any] = {}
        set_dotted(tmp, str(key), value)
        out = merge(out, tmp)
    return out


def merge(base: Any, over: Any, path: str = "") -> Any:
    """Deep merge `over` into a copy of `base`: mappings merge key by key, a mapping with numeric
    keys updates items of a list, anything else replaces."""
    join = (lambda k: f"{path}.{k}" if path else str(k))
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, join(k)) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, Mapping) and over and all(_is_index(k) for k in over):
        items = list(base)
        for k, v in over.items():
            i = _index(items, k, join(k))
            items[i] = merge(items[i], v, join(k))
        return items
    return copy.deepcopy(over)


# ----------------------------------------------------------------------------------------------
# loading


def check_renamed(data: Mapping[str, Any], renamed: Mapping[str, str]) -> None:
    """Raise `ConfigError("<old key> was renamed: use <new>")` for the first renamed key present."""
    for old, new in renamed.items():
        cur: Any = data
        for part in old.split("."):
            if not isinstance(cur, Mapping) or part not in cur:
                break
            cur = cur[part]
        else:
            raise ConfigError(f"{old} was renamed: use {new}")


def validate(cls: type[M], data: Any) -> M:
    """`cls.model_validate(data)`, with pydantic's errors as one `ConfigError` naming the keys."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(translate(cls, e)) from None


def load_config(cls: type[M], yaml_path: str | None = None,
                overrides: list[str] | Mapping[str, Any] | None = None,
                renamed: Mapping[str, str] | None = None,
                implied: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> M:
    """Defaults <- implied settings <- YAML file <- overrides (deep merge), then validation by the
    pydantic schema.

    `overrides` is a command-line list (see `parse_overrides`) or a dict, nested or with dotted
    keys (`{"trainer.steps": 3}`). `renamed` maps old dotted keys to the text telling what to use.
    `implied(user)` gets what the user gave (YAML merged with overrides) and returns settings that
    follow from it (e.g. the schedule an algorithm needs), which the user's own settings override.
    """
    try:
        data: Any = to_dict(cls())
    except ValidationError:  # the schema has required fields: start from nothing
        data = {}
    user: dict[str, Any] = load_yaml(yaml_path) if yaml_path else {}
    if isinstance(overrides, Mapping):
        user = merge(user, _expand(overrides))
    elif isinstance(overrides, (list, tuple)):
        user = merge(user, parse_overrides(list(overrides)))
    elif overrides is not None:
        raise TypeError(f"overrides must be a list of strings or a dict, got {type(overrides).__name__}")
    check_renamed(user, renamed or {})
    if implied is not None:
        data = merge(data, implied(user))
    return validate(cls, merge(data, user))


def to_dict(cfg: Any) -> Any:
    """A config tree -> plain nested dicts/lists (round-trips through `load_config`)."""
    if isinstance(cfg, BaseModel):
        return cfg.model_dump(mode="python")
    return copy.deepcopy(cfg)


__all__ = [
    "ConfigError", "Section", "check_renamed", "load_config", "load_yaml", "merge", "parse_overrides",
    "parse_value", "set_dotted", "to_dict", "validate",
]
