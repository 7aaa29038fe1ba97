"""Make math-verify's LaTeX parser behave the same under every antlr4 runtime it supports.

latex2sympy2_extended ships one parser generated per antlr4-python3-runtime (4.9.3, 4.11.0,
4.13.2) and picks it by the installed runtime's version. Its converter asks every atom for a
``FUNC_GAMMA`` token (``atom.FUNC_GAMMA()``) before it gets to percent numbers, but only the
4.13.2 parser has that token: under 4.9.3 (what omegaconf, so every Hydra-based trainer, pins) and
4.11.0 the question raises AttributeError, and ``10\\%`` parses to nothing, so ``\\boxed{10\\%}``
scored 0 against 0.1.

:func:`check_parser` runs once, before the first verification: where the parser's atoms lack the
accessor it adds one that answers "no such token" (these parsers cannot produce the token, so that
is the true answer), then parses a few reference expressions and raises a one-line error naming
the runtime if any still comes out wrong, rather than letting a broken parser score silently.
"""

from __future__ import annotations

import functools

__all__ = ["ParserError", "check_parser"]

# LaTeX -> the value latex2sympy2 must give it (percents are the forms the accessor affects)
_REFERENCE = {"10\\%": 0.1, "50 \\%": 0.5, "\\frac{1}{4}": 0.25, "2^{3}": 8.0, "1,000": 1000.0}


class ParserError(RuntimeError):
    """math-verify's LaTeX parser gives wrong values under the installed antlr4 runtime."""


def _runtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("antlr4-python3-runtime")
    except PackageNotFoundError:
        return "(not installed)"


def _no_token(self) -> None:  # noqa: ARG001 - the accessor's signature
    """The FUNC_GAMMA accessor for parsers whose grammar has no such token: never present."""
    return None


@functools.lru_cache(maxsize=1)
def check_parser() -> str:
    """Repair and check the LaTeX parser once; return what was done (for logs). Raises ParserError."""
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.antlr_parser import PSParser

    atom = PSParser.AtomContext
    done = "parser as shipped"
    if not hasattr(atom, "FUNC_GAMMA"):
        atom.FUNC_GAMMA = _no_token
        done = "added the missing AtomContext.FUNC_GAMMA accessor"
    wrong = []
    for latex, want in _REFERENCE.items():
        try:
            got = float(latex2sympy(latex).doit())
        except Exception as exc:  # noqa: BLE001 - any failure is a broken parser
            got = f"{type(exc).__name__}: {exc}"
        if not (isinstance(got, float) and abs(got - want) < 1e-9):
            wrong.append(f"{latex!r} -> {got} (want {want})")
    if wrong:
        raise ParserError(
            f"math reward: math-verify's LaTeX parser is broken under antlr4-python3-runtime {_runtime_version()} "
            f"({'; '.join(wrong)}); install math-verify[antlr4-13-2]"
        )
    return done
