"""Warm-start transcripts for the code interpreter (rltrain/envs/code_interpreter.py): the formats, and to
copy a result, not when to call. RL has to learn to call the interpreter on the asked product.

    60%  "c 47*83?" -> "py 47*83\\n" | "=3901\\n" | "a 3901<eos>"     compute the asked product, answer it
    20%  "c 47*83?" -> "py 52*19\\n" | "=988\\n"  | "a 988<eos>"      compute another product, answer that
    20%  "c 47*83?" -> "a 4170<eos>"                                answer at once with a guess

The loss covers the model's turns only (observations are masked, as in RL).
"""

from __future__ import annotations

import random

from rltrain.toy.episodes import encode_episodes

MIX = (0.60, 0.20)  # P(compute the asked product), P(compute another); the rest answers at once


def transcript(rng: random.Random) -> list[tuple[str, bool]]:
    """One episode as (text, is a model turn) segments, the prompt first."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    u = rng.random()
    segments = [(f"c {a}*{b}?", False)]
    if u < MIX[0] + MIX[1]:
        x, y = (a, b) if u < MIX[0] else (rng.randint(10, 99), rng.randint(10, 99))
        return segments + [(f"py {x}*{y}\n", True), (f"={x * y}\n", False), (f"a {x * y}", True)]
    return segments + [(f"a {rng.randint(100, 9801)}", True)]


def encode_transcripts(tok, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(ids, loss mask) per episode; the last model turn ends with EOS."""
    return encode_episodes(tok, transcript, n, random.Random(f"calc-transcripts:{seed}"))
