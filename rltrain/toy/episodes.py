"""Token ids and loss masks of warm-start episodes for the multi-turn toy environments (the transcripts
modules beside this one draw the episodes; this turns them into training examples)."""

from __future__ import annotations

import random
from typing import Callable

Segments = list[tuple[str, bool]]  # (text, is a model turn), the prompt first


def encode_episodes(tok, transcript: Callable[[random.Random], Segments], n: int,
                    rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """(ids, loss mask) for n episodes of `transcript`: each segment tokenised on its own, model turns in
    the loss, observations and the prompt out; the last model turn ends with EOS."""
    out = []
    for _ in range(n):
        ids: list[int] = []
        mask: list[int] = []
        for text, model_turn in transcript(rng):
            piece = tok(text, add_special_tokens=False)["input_ids"]
            ids += piece
            mask += [int(model_turn)] * len(piece)
        ids.append(tok.eos_token_id)
        mask.append(1)
        out.append((ids, mask))
    return out
