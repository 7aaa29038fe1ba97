"""Plain data across the sandbox boundary: values a judged program produced, as JSON and back.

The sandbox (``_sandbox_runner.py``) encodes the value of each expression a test asks for with
:func:`to_plain`; the trusted side decodes it with :func:`from_plain` and compares there, so no
object the program made (and no ``__eq__``, ``__bool__`` or ``__hash__`` it wrote) takes part in a
verdict. Plain data is ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes`` and
``list``, ``tuple``, ``dict``, ``set``, ``frozenset`` of plain data, checked with ``type(x) is``:
a subclass (an ``int`` that says it equals everything) is not plain. NumPy scalars and arrays are
turned into Python values by their own ``tolist()`` first and the result checked like any other.

The encoding is JSON: scalars as themselves (``NaN`` and ``Infinity`` as Python's json writes them),
containers as one-key objects (``{"l": [...]}`` list, ``"t"`` tuple, ``"s"`` set, ``"f"`` frozenset,
``"d"`` dict as ``[key, value]`` pairs, ``"b"`` bytes as hex, ``"c"`` complex as ``[real, imag]``).
Stdlib only, and only json: the sandbox imports this file by path at every run, so it leaves out
even ``typing`` (its import costs milliseconds); values are annotated as ``object``.
"""

from __future__ import annotations

import json

__all__ = ["MAX_DEPTH", "NotPlain", "dumps", "from_plain", "to_plain"]

#: deeper nesting than this is not plain data (nor is a container that holds itself)
MAX_DEPTH = 64
_SCALARS = (type(None), bool, int, float, str)
_TAGS = {list: "l", tuple: "t", set: "s", frozenset: "f"}


class NotPlain(TypeError):
    """The value is not plain data (its type's name says which part)."""


def to_plain(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data; raises NotPlain for anything that is not plain data."""
    if depth > MAX_DEPTH:
        raise NotPlain("nested too deep")
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _TAGS:
        return {_TAGS[kind]: [to_plain(v, depth + 1) for v in value]}
    if kind is dict:
        return {"d": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if getattr(kind, "__module__", None) == "numpy" and hasattr(value, "tolist"):
        return to_plain(value.tolist(), depth + 1)
    raise NotPlain(f"{kind.__name__} is not plain data")


def dumps(value: object) -> str:
    """One line of JSON for ``value`` (NotPlain if it is not plain data)."""
    return json.dumps(to_plain(value), separators=(",", ":"))


def from_plain(data: object, depth: int = 0) -> object:
    """The value :func:`to_plain` encoded; ValueError for anything it cannot have written."""
    try:
        return _decode(data, depth)
    except TypeError as exc:  # an unhashable set member or dict key
        raise ValueError(str(exc)) from None


def _decode(data: object, depth: int) -> object:
    if depth > MAX_DEPTH + 1:
        raise ValueError("nested too deep")
    kind = type(data)
    if kind in _SCALARS:
        return data
    if kind is not dict or len(data) != 1:
        raise ValueError(f"not an encoded value: {kind.__name__}")
    (tag, body), = data.items()
    if tag == "b" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "c" and type(body) is list and len(body) == 2 and all(type(x) in (int, float) for x in body):
        return complex(body[0], body[1])
    if type(body) is not list:
        raise ValueError(f"not an encoded value: tag {tag!r}")
    if tag == "d":
        if not all(type(kv) is list and len(kv) == 2 for kv in body):
            raise ValueError("not an encoded dict")
        return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in body}
    items = [_decode(v, depth + 1) for v in body]
    if tag == "l":
        return items
    if tag == "t":
        return tuple(items)
    if tag == "s":
        return set(items)
    if tag == "f":
        return frozenset(items)
    raise ValueError(f"not an encoded value: tag {tag!r}")
