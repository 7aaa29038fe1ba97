"""Partial rollouts (Kimi k1.5, arXiv:2501.12599 §2.6.2): a long response spans several steps.

With `rollout.partial_tokens: c > 0`, a generation round gives each sample at most c new tokens. A
sample that stops (EOS or a stop token) or reaches `rollout.max_new_tokens` is done; the others wait
here with their token ids and per-token sampling log-probs and resume in the next step's first round,
after the weight sync, from exactly those ids (the engine's `continue_sequences`: token-in/token-out,
nothing re-tokenised). A group enters a batch once all its samples are done. Each token keeps the
log-prob of the policy that sampled it, so a resumed sample's ratio is taken per token against that
mixed behaviour policy; its `version` (for staleness) is the oldest that contributed tokens.

Generation per step is thus bounded by c tokens per sample, and a few long responses no longer hold
the whole batch back. Groups done beyond what a step wants wait (`ready`) and lead the next batch.
The pool is in the checkpoint. An engine class with `resumes_partial = False` is refused at start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rltrain.driver.flow.rollout import PendingContinuation, Record, Rollout
from rltrain.engines.base import SamplingConfig


@dataclass
class PendingResume:
    """Continuations in flight; `result()` extends the waiting records in place and returns them."""

    records: list[Record]
    pending: PendingContinuation
    max_new_tokens: int

    def result(self) -> list[Record]:
        for rec, (smp, version) in zip(self.records, self.pending.result()):
            room = self.max_new_tokens - len(rec.response_ids)  # a last chunk may overshoot the limit
            rec.response_ids = rec.response_ids + list(smp.response_ids)[:room]
            rec.logprobs = rec.logprobs + list(smp.logprobs)[:room]
            rec.finished = smp.finished and len(smp.response_ids) <= room
            rec.version = min(rec.version, version)
        return self.records


class PartialPool:
    """Samples cut at the per-round budget, waiting to resume; done groups waiting for a batch."""

    def __init__(self, rollout: Rollout, sampling: SamplingConfig, chunk_tokens: int) -> None:
        self.rollout, self.sampling, self.chunk = rollout, sampling, chunk_tokens
        self.max_new_tokens = sampling.max_new_tokens
        self.waiting: list[Record] = []   # every sample of each group with an unfinished one, by group
        self.ready: list[Record] = []     # scored, kept groups beyond what an earlier step wanted
        self.resumed = 0  # samples resumed this step (over all its rounds)

    def round_sampling(self) -> SamplingConfig:
        """Sampling for a fresh round: at most `chunk` new tokens per sample."""
        return replace(self.sampling, max_new_tokens=min(self.chunk, self.max_new_tokens))

    def done(self, rec: Record) -> bool:
        return rec.finished or len(rec.response_ids) >= self.max_new_tokens

    def resume(self) -> PendingResume | None:
        """Continue every unfinished waiting sample by up to `chunk` tokens (returns at once)."""
        todo = [r for r in self.waiting if not self.done(r)]
        self.resumed += len(todo)
        if not todo:
            return None
        pending = self.rollout.submit_continue([r.prompt_ids + r.response_ids for r in todo], self.round_sampling())
        return PendingResume(todo, pending, self.max_new_tokens)

    def settle(self, fresh: list[Record]) -> list[Record]:
        """Of the waiting records (resumed or not) and a fresh round's: those of whole groups that are
        done, waiting groups first; the rest wait for the next step."""
        by_group: dict[int, list[Record]] = {}
        for r in self.waiting + fresh:
            by_group.setdefault(r.group, []).append(r)
        done, self.waiting = [], []
        for group in by_group.values():
            (done if all(self.done(r) for r in group) else self.waiting).extend(group)
        return done

    def metrics(self) -> dict[str, float]:
        """This step's figures (resets the resumed count)."""
        resumed, self.resumed = self.resumed, 0
        return {"rollout/partial_resumed": float(resumed),
                "rollout/partial_waiting_groups": float(len({r.group for r in self.waiting})),
                "rollout/partial_waiting_tokens": float(sum(len(r.response_ids) for r in self.waiting)),
                "rollout/partial_ready_groups": float(len({r.group for r in self.ready}))}

    def state_dict(self) -> dict[str, Any]:
        return {"waiting": self.waiting, "ready": self.ready}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.waiting, self.ready = list(state["waiting"]), list(state["ready"])
