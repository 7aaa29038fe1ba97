"""Rollout on the driver side: prompts -> engines -> scored samples -> the typed update batch.

Token-in/token-out: prompts are tokenised once, engines return token ids and sampling log-probs,
and the batch is built from those ids. Completion text is decoded only to score rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from algorithms import RolloutBatch
from rltrain.data import PromptRow, render_prompt
from rltrain.engines.base import SamplingConfig
from rltrain.workers.logprobs import pack_rows
from rltrain.driver.rewards import RewardRunner
from rltrain.workers.group import RankGroup


@dataclass
class Record:
    """One scored sample (kept as plain lists until the batch is packed)."""

    row: PromptRow
    group: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    finished: bool
    version: int
    reward: float | None = None
    completion: str = ""
    reward_parts: dict[str, float | None] = field(default_factory=dict)


@dataclass
class PendingRollout:
    """Generation in flight on the workers (`Rollout.submit`); `result()` waits for the records."""

    rows: list[PromptRow]
    prompt_ids: list[list[int]]
    shards: list[list[int]]
    futures: list
    first_group: int

    def result(self) -> list[Record]:
        records: list[Record] = []
        for shard, out in zip(self.shards, RankGroup.gather(self.futures)):
            for smp in out["samples"]:
                i = shard[smp.prompt_index]
                records.append(Record(self.rows[i], self.first_group + i, self.prompt_ids[i], smp.response_ids,
                                      smp.logprobs, smp.finished, out["version"]))
        records.sort(key=lambda r: r.group)
        return records


class Rollout:
    """Prompts -> rollout workers -> records, and scoring. `workers` is the rollout RankGroup."""

    def __init__(self, workers: RankGroup, tokenizer, rewards: RewardRunner) -> None:
        self.workers = workers
        self.tokenizer = tokenizer
        self.rewards = rewards
        self._prompt_cache: dict[str, list[int]] = {}

    def prompt_ids(self, row: PromptRow) -> list[int]:
        if row.key not in self._prompt_cache:
            text = render_prompt(row.prompt, self.tokenizer)
            chat = not isinstance(row.prompt, str)
            self._prompt_cache[row.key] = self.tokenizer(text, add_special_tokens=not chat)["input_ids"]
        return self._prompt_cache[row.key]

    def submit(self, rows: list[PromptRow], sampling: SamplingConfig, first_group: int = 0) -> "PendingRollout":
        """Start generating n samples per row, spread over the workers; returns at once."""
        ids = [self.prompt_ids(r) for r in rows]
        shards = [s for s in (list(range(len(rows)))[w::len(self.workers)] for w in range(len(self.workers))) if s]
        futures = self.workers.submit_each("generate", [([ids[i] for i in shard], sampling) for shard in shards])
        return PendingRollout(rows, ids, shards, futures, first_group)

    def generate(self, rows: list[PromptRow], sampling: SamplingConfig, first_group: int = 0) -> list[Record]:
        """n samples per row, spread over the workers; records come back grouped by row."""
        return self.submit(rows, sampling, first_group).result()

    def score(self, records: list[Record]) -> None:
        """Fill `reward` (None = the sample is dropped from the update) and the decoded completion."""
        for rec in records:
            rec.completion = self.tokenizer.decode(rec.response_ids, skip_special_tokens=True)
        total, parts = self.rewards([r.row.prompt for r in records], [r.completion for r in records],
                                    [r.row for r in records])
        for i, rec in enumerate(records):
            rec.reward = total[i]
            rec.reward_parts = {name: vals[i] for name, vals in parts.items()}


def pack_samples(prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int,
                 *per_token: list[list[float]]) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Model inputs of (prompt, response) pairs (`pack_rows`; an empty response keeps one masked pad
    token), and each ragged per-token list (log-probs, advantages) as an (N,T) tensor aligned to it."""
    packed = pack_rows(prompt_ids, [r or [pad_id] for r in response_ids], pad_id)
    mask = packed["response_mask"]
    for i, r in enumerate(response_ids):
        if not r:
            mask[i] = 0.0
    tensors = []
    for values in per_token:
        t = torch.zeros_like(mask)
        for i, v in enumerate(values):
            t[i, : len(v)] = torch.tensor(v, dtype=torch.float32)
        tensors.append(t)
    return packed, tensors


def to_batch(records: list[Record], pad_id: int, step: int, max_response_len: int = 0) -> RolloutBatch:
    """Pack scored records into the typed update batch (sampling log-probs aligned to tokens)."""
    packed, (sampling_logp,) = pack_samples([r.prompt_ids for r in records], [r.response_ids for r in records],
                                            pad_id, [r.logprobs for r in records])
    mask = packed["response_mask"]
    groups = {g: k for k, g in enumerate(dict.fromkeys(r.group for r in records))}
    return RolloutBatch(
        response_ids=packed["response_ids"], response_mask=mask,
        rewards=torch.tensor([r.reward if r.reward is not None else 0.0 for r in records], dtype=torch.float32),
        group_ids=torch.tensor([groups[r.group] for r in records], dtype=torch.long),
        prompt_keys=[r.row.key for r in records], sampling_logp=sampling_logp,
        versions=torch.tensor([r.version for r in records], dtype=torch.long), pad_id=pad_id, step=step,
        max_response_len=max_response_len, replayed=torch.zeros(len(records), dtype=torch.bool),
        input_ids=packed["input_ids"], attention_mask=packed["attention_mask"], resp_start=packed["resp_start"],
    )


def rollout_metrics(records: list[Record], max_new_tokens: int) -> dict[str, float]:
    """rollout/* and reward/* metrics of the scored samples (before any data-policy filtering)."""
    scored = [r for r in records if r.reward is not None]
    rewards = torch.tensor([r.reward for r in scored], dtype=torch.float32) if scored else torch.zeros(1)
    lengths = torch.tensor([len(r.response_ids) for r in records], dtype=torch.float32)
    by_group: dict[int, list[float]] = {}
    for r in scored:
        by_group.setdefault(r.group, []).append(r.reward)
    zero_std = [len(set(v)) == 1 for v in by_group.values()]
    out: dict[str, Any] = {
        "rollout/reward_mean": rewards.mean().item(),
        "rollout/reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
        "rollout/response_length_mean": lengths.mean().item(),
        "rollout/response_length_max": lengths.max().item(),
        "rollout/response_length_clip_ratio": sum(not r.finished for r in records) / max(1, len(records)),
        "rollout/frac_reward_zero_std": sum(zero_std) / max(1, len(zero_std)),
        "rollout/dropped_samples": float(len(records) - len(scored)),
        "rollout/samples": float(len(records)),
    }
    names = {n for r in scored for n in r.reward_parts}
    for name in sorted(names):
        vals = [r.reward_parts[name] for r in scored if r.reward_parts.get(name) is not None]
        if vals:
            out[f"reward/{name}_mean"] = sum(vals) / len(vals)
    return out
