"""Warm-start transcripts for the search environment (rltrain/envs/search.py): the format, not the facts.

Episodes are drawn on knowledge-base world 1 (RL and evaluation use world 0, so the warm-started model
cannot know their facts). The mix teaches the call and answer formats and to copy a looked-up value,
but leaves the policy to learn by RL: searching the asked entity is only one behaviour of several.

    60%  "ka?" -> "s ka\\n" | "ka=37\\n" | "a 37<eos>"      search the asked entity, answer its value
    20%  "ka?" -> "s mo\\n" | "mo=52\\n" | "a 52<eos>"      search another entity, answer that value
    20%  "ka?" -> "a 81<eos>"                              answer at once with a guess

The loss covers the model's turns only (observations are masked, as in RL).
"""

from __future__ import annotations

import random

from rltrain.data.tasks import SEARCH_ENTITIES, search_fact
from rltrain.toy.episodes import encode_episodes

WORLD = 1
MIX = (0.60, 0.20)  # P(search the asked entity), P(search another one); the rest answers at once


def transcript(rng: random.Random) -> list[tuple[str, bool]]:
    """One episode as (text, is a model turn) segments, the prompt first."""
    entity = rng.choice(SEARCH_ENTITIES)
    u = rng.random()
    segments = [(f"{entity}?", False)]
    if u < MIX[0] + MIX[1]:
        target = entity if u < MIX[0] else rng.choice([e for e in SEARCH_ENTITIES if e != entity])
        value = search_fact(WORLD, target)
        return segments + [(f"s {target}\n", True), (f"{target}={value}\n", False), (f"a {value}", True)]
    return segments + [(f"a {rng.randint(10, 99)}", True)]


def encode_transcripts(tok, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(ids, loss mask) per episode; the last model turn ends with EOS."""
    return encode_episodes(tok, transcript, n, random.Random(f"search-transcripts:{seed}"))
