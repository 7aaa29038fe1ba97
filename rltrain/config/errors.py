"""Config errors: `ConfigError`, the strict `Section` base model, and the translation of pydantic's
`ValidationError` into messages that start with the full dotted key and say what is allowed.

    learner.lrr: unknown key; allowed: num_ranks, ..., lr, ...; did you mean 'learner.lr'?
    learner.zero_stage: must be one of 0, 1, 2, 3, got 4
    rollout.temperature: must be > 0, got 0
    reward.functions[1].weight: expected float, got str 'x'
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A config key is unknown, renamed, has a value of the wrong type, or fails a constraint."""


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(tp: Any) -> Any:
    """`Annotated[X, ...]` -> X; `X | None` -> X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, no type coercion (an int is accepted
    for a float; numbers are accepted for text and become strings), re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_as_text_no_bool_choices(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        tp = _unwrap(field.annotation) if field is not None else None
        if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. `trainer.run_name=2024`, parsed as an int
        if get_origin(tp) is Literal and isinstance(value, bool) and not any(a is value for a in get_args(tp)):
            raise PydanticCustomError("literal_error", "bool is not one of the choices")
        return value


def dotted(loc: tuple[Any, ...]) -> str:
    """('reward', 'functions', 0, 'weight') -> 'reward.functions[0].weight'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _walk(cls: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, FieldInfo | None]:
    """The annotation found at `loc` in the schema `cls`, and its FieldInfo when it is a field."""
    tp: Any = cls
    info: FieldInfo | None = None
    for part in loc:
        tp = _unwrap(tp)
        info = None
        if _is_model(tp) and isinstance(part, str) and part in tp.model_fields:
            info = tp.model_fields[part]
            tp = info.annotation
        elif get_origin(tp) is list and isinstance(part, int):
            tp = (get_args(tp) or (Any,))[0]
        elif get_origin(tp) is dict:
            tp = (get_args(tp) or (Any, Any))[1]
        else:
            return Any, None
    return tp, info


def type_name(tp: Any) -> str:
    """How an annotation reads in a message: 'float', 'list[float]', 'str or null', 'a mapping'."""
    if get_origin(tp) is Annotated:
        return type_name(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in get_args(tp))
    if _is_model(tp):
        return "a mapping"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "null")


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else repr(v)


def _bounds(info: FieldInfo | None, ctx: dict[str, Any]) -> str:
    """'must be > 0', or 'must be in (0, 1]' when the field has a bound on both sides."""
    found = {op: v for op, v in ctx.items() if op in _OPS}
    for m in info.metadata if info is not None else []:
        found.update({op: getattr(m, op) for op in _OPS if getattr(m, op, None) is not None})
    low = ("(", found["gt"]) if "gt" in found else ("[", found["ge"]) if "ge" in found else None
    high = (")", found["lt"]) if "lt" in found else ("]", found["le"]) if "le" in found else None
    if low and high:
        return f"must be in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
    return ", ".join(f"must be {_OPS[op]} {_num(v)}" for op, v in ctx.items() if op in _OPS)


_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def unknown_key(cls: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'<key>: unknown key; allowed: a, b; did you mean '<parent>.<a>'?'."""
    parent, _ = _walk(cls, loc[:-1])
    allowed = list(_unwrap(parent).model_fields) if _is_model(_unwrap(parent)) else []
    text = f"{dotted(loc)}: unknown key; allowed: {', '.join(allowed) or '(no keys)'}"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if close:
        text += f"; did you mean '{dotted((*loc[:-1], close[0]))}'?"
    return text


def _message(cls: type[BaseModel], err: Any) -> str:
    loc, kind, ctx, value = tuple(err["loc"]), err["type"], err.get("ctx") or {}, err.get("input")
    key = dotted(loc)
    if kind == "extra_forbidden":
        return unknown_key(cls, loc)
    if kind == "missing":
        return f"{key}: missing required key"
    tp, info = _walk(cls, loc)
    if loc and loc[-1] == "[key]":
        return f"{key}: keys must be strings, got {type(value).__name__} {short(value)}"
    if kind == "literal_error":
        choices = get_args(_unwrap(tp)) or (ctx.get("expected"),)
        return f"{key}: must be one of {', '.join(str(c) for c in choices)}, got {short(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{key}: {_bounds(info, ctx)}, got {short(value)}"
    if kind == "finite_number":
        return f"{key}: must be a finite number, got {short(value)}"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", err["msg"]))
        if not loc:  # a check across sections: its text names the keys
            return text
        return text if text.startswith(f"{key}:") or text.startswith(f"{key}.") else f"{key}: {text}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{key}: expected {type_name(tp)}, got {type(value).__name__} {short(value)}"
    return f"{key}: {err['msg']}, got {short(value)}"


def translate(cls: type[BaseModel], error: ValidationError) -> str:
    """Every error of a ValidationError on `cls`, one line each, each starting with its dotted key."""
    lines: list[str] = []
    for err in error.errors(include_url=False):
        line = _message(cls, err)
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)
