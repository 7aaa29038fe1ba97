"""Warm-start transcripts for the multi-hop search environment (rltrain/envs/search.py `ChainSearchEnv`):
the formats and the hop, not the facts.

Episodes are drawn on knowledge-base world 1 (RL and evaluation use world 0). The mix teaches the call,
to follow an entity an observation names, to answer a value, and leaves the rest to RL:

    15%  "ka?" -> s ka | ka=mb | s mb | mb=qz | s qz | qz=37 | a 37      follow the chain to its value
    15%  the same, but one hop searches another entity (and follows what that returns)
    40%  stop early: after 1 or 2 hops answer with a guess
    30%  "ka?" -> "a 81"                                              answer at once with a guess

so that the warm-started policy rarely reaches the value (the outcome reward is sparse) but has seen
every step of the way.

The loss covers the model's turns only (observations are masked, as in RL).
"""

from __future__ import annotations

import random

from rltrain.data.tasks import SEARCH_ENTITIES, chain_fact, chain_heads
from rltrain.toy.episodes import encode_episodes

WORLD = 1
MIX = (0.15, 0.15, 0.40)  # follow the chain, take one wrong hop, stop early; the rest answers at once


def _follow(rng: random.Random, entity: str, wrong_hop: int | None, stop_after: int | None) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    target, hop = entity, 0
    while True:
        if stop_after is not None and hop == stop_after:
            return out + [(f"a {rng.randint(10, 99)}", True)]
        if hop == wrong_hop:
            target = rng.choice([e for e in SEARCH_ENTITIES if e != target])
        fact = chain_fact(WORLD, target)
        out += [(f"s {target}\n", True), (f"{target}={fact}\n", False)]
        if fact.isdigit() or hop >= 5:
            return out + [(f"a {fact}", True)]
        target, hop = fact, hop + 1


def transcript(rng: random.Random) -> list[tuple[str, bool]]:
    """One episode as (text, is a model turn) segments, the prompt first."""
    entity = rng.choice(chain_heads(WORLD))
    u = rng.random()
    segments = [(f"{entity}?", False)]
    if u < MIX[0]:
        return segments + _follow(rng, entity, None, None)
    if u < MIX[0] + MIX[1]:
        return segments + _follow(rng, entity, rng.randint(0, 2), None)
    if u < sum(MIX):
        return segments + _follow(rng, entity, None, rng.randint(1, 2))
    return segments + [(f"a {rng.randint(10, 99)}", True)]


def encode_transcripts(tok, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(ids, loss mask) per episode; the last model turn ends with EOS."""
    return encode_episodes(tok, transcript, n, random.Random(f"search-chain-transcripts:{seed}"))
