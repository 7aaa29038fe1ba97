"""Multi-turn rollouts: episodes with an environment, token-in/token-out (DESIGN.md "Schedules and multi-turn").

`MultiTurnRollout` has `Rollout`'s interface (submit / generate / score), so the collector, the
schedules and evaluation run episodes without knowing it. One episode per sample (n per prompt, one
environment instance each). Each round, every unfinished episode's whole token sequence goes to the
engines (`continue_sequences`, batched across episodes at different turns and spread over the
workers) for one turn: until EOS, a stop token (`env.stop`) or `env.turn_tokens`. The turn's text is
decoded for the environment only; its observation is tokenised once and appended as ids, masked out of
the loss (`loss_mask` 0). So the learner sees exactly the engine's ids plus the observation ids. Every
token carries its turn (`turn_ids`: a turn's observation belongs to it); per-turn environment rewards
sit on the turn's last generated token. An episode ends when the environment says done, after
`env.max_turns`, or when its response (turns + observations) reaches `rollout.max_new_tokens`; an
observation longer than the budget left is cut and the episode ends (marked `truncated_observation`).
The outcome reward is the environment's `score(history)`.

An environment that raises, hangs past `env.step_timeout_s`, or returns a malformed result ends its
episode with a logged reason; the episode is dropped from the update (reward None) and counted in
`multiturn/env_errors`; the run goes on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from rltrain.data import PromptRow
from rltrain.driver.flow.chat_check import template_mismatch
from rltrain.driver.flow.rollout import Record, Rollout
from rltrain.engines.base import SamplingConfig
from rltrain.envs import EnvError, StepResult, Turn, env_class

log = logging.getLogger("rltrain.multiturn")


@dataclass
class Episode:
    row: PromptRow
    group: int
    prompt_ids: list[int]
    env: Any = None
    response_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    turn_ids: list[int] = field(default_factory=list)
    token_rewards: list[float] = field(default_factory=list)
    history: list[Turn] = field(default_factory=list)
    version: int = 1 << 62
    turns: int = 0
    end: str | None = None  # "done", "max_turns", "length", "truncated_observation", "env_error"
    error: str | None = None
    env_seconds: float = 0.0  # time spent in the environment's reset / step / score

    def add(self, ids: list[int], logprobs: list[float], generated: bool, turn: int) -> None:
        self.response_ids += ids
        self.logprobs += logprobs
        self.loss_mask += [int(generated)] * len(ids)
        self.turn_ids += [turn] * len(ids)
        self.token_rewards += [0.0] * len(ids)


def call_with_timeout(fn: Callable, timeout_s: float, what: str, *args: Any) -> Any:
    """`fn(*args)` in a daemon thread; EnvError if it raises or has not returned after `timeout_s`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported below, the run goes on
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True, name=f"env:{what}")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise EnvError(f"{what} did not return within env.step_timeout_s={timeout_s}")
    if "error" in box:
        e = box["error"]
        raise EnvError(f"{what} raised {type(e).__name__}: {e}")
    return box.get("value")


def check_step(result: Any) -> StepResult:
    """The environment's step result, or EnvError saying what is wrong with it."""
    if not isinstance(result, StepResult):
        raise EnvError(f"step returned {type(result).__name__}, expected rltrain.envs.StepResult")
    if result.observation is not None and not isinstance(result.observation, str):
        raise EnvError(f"step returned an observation of type {type(result.observation).__name__}, expected str")
    if not isinstance(result.done, bool):
        raise EnvError(f"step returned done={result.done!r}, expected a bool")
    if result.reward is not None and (not isinstance(result.reward, (int, float)) or not math.isfinite(result.reward)):
        raise EnvError(f"step returned reward={result.reward!r}, expected a finite number or None")
    return result


@dataclass
class PendingEpisodes:
    """Episodes to run (`MultiTurnRollout.submit`); they run, turn by turn, when `result()` is called."""

    rollout: "MultiTurnRollout"
    rows: list[PromptRow]
    sampling: SamplingConfig
    first_group: int
    n_per_row: list[int] | None = None  # None: sampling.n episodes per row

    def result(self) -> list[Record]:
        return self.rollout.run(self.rows, self.sampling, self.first_group, self.n_per_row)


def chat_observation_wrapper(tokenizer) -> tuple[str, str]:
    """(before, after): the text a chat template puts around a `tool` message that follows the model's
    turn (which ends with the EOS token the model generated), up to the next assistant turn's
    generation prompt. Rendered once, so an observation is tokenised once as before + text + after."""
    marker = "\x00OBSERVATION\x00"
    base = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    try:
        head = tokenizer.apply_chat_template(base, tokenize=False)
        full = tokenizer.apply_chat_template(base + [{"role": "tool", "content": marker}], tokenize=False,
                                             add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001 - no template, or one without a tool role
        raise ValueError(f"env.observation_format=chat: the tokenizer's chat template cannot render a tool "
                         f"message ({type(e).__name__}: {e}); use env.observation_format=plain") from None
    eos = tokenizer.eos_token or ""
    cut = head.rfind(eos) if eos else -1  # the model's turn ends at the EOS it generated, not after it
    head = head[: cut + len(eos)] if cut >= 0 else head
    if not full.startswith(head) or marker not in full:
        raise ValueError("env.observation_format=chat: the chat template renders earlier turns differently once a "
                         "tool message follows; use env.observation_format=plain")
    before, _, after = full[len(head):].partition(marker)
    return before, after


class MultiTurnRollout(Rollout):
    def __init__(self, workers, tokenizer, env_cfg, max_response_tokens: int) -> None:
        super().__init__(workers, tokenizer, rewards=None)
        self.env_cls, self.cfg, self.budget = env_class(env_cfg.name), env_cfg, max_response_tokens
        self.stop_ids = tuple(self._stop_id(s) for s in env_cfg.stop)
        self.wrap = chat_observation_wrapper(tokenizer) if env_cfg.observation_format == "chat" else ("", "")
        self._teacher_cache: dict[str, tuple[list[int], list[int]] | None] = {}  # row key -> teacher ids

    def _stop_id(self, text: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"env.stop: {text!r} is {len(ids)} tokens for this tokenizer; each stop string must be "
                             "exactly one token")
        return ids[0]

    def submit(self, rows: list[PromptRow], sampling: SamplingConfig, first_group: int = 0,
               n_per_row: list[int] | None = None) -> PendingEpisodes:
        return PendingEpisodes(self, rows, sampling, first_group, n_per_row)

    def reward_counts(self) -> dict[str, int]:
        """No reward functions: an episode's outcome is its environment's score."""
        return {}

    def score(self, records: list[Record]) -> None:
        """Episodes are scored by their environment when they end; only the completion text is set here."""
        for rec in records:
            rec.completion = self.tokenizer.decode(rec.response_ids, skip_special_tokens=True)

    # ----- episodes -------------------------------------------------------------------------
    def run(self, rows: list[PromptRow], sampling: SamplingConfig, first_group: int,
            n_per_row: list[int] | None = None) -> list[Record]:
        ns = n_per_row if n_per_row is not None else [sampling.n] * len(rows)
        episodes = [self._start(row, first_group + i) for i, row in enumerate(rows) for _ in range(ns[i])]
        turn_sampling = replace(sampling, n=1, max_new_tokens=self.cfg.turn_tokens, stop_token_ids=self.stop_ids)
        # the episodes' environment steps run side by side (a tool call may wait on a subprocess); each
        # touches its own episode only. One pool for the whole call.
        with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
            for turn in range(self.cfg.max_turns):
                active = [e for e in episodes if e.end is None]
                if not active:
                    break
                outs = self.submit_continue([e.prompt_ids + e.response_ids for e in active], turn_sampling).result()
                list(pool.map(lambda ep, out, t=turn: self._turn(ep, t, out[0].response_ids, out[0].logprobs, out[1]),
                              active, outs))
        return [self._record(e) for e in episodes]

    def _start(self, row: PromptRow, group: int) -> Episode:
        ep = Episode(row, group, list(self.prompt_ids(row)))
        try:
            ep.env = call_with_timeout(lambda: self.env_cls(**self.cfg.options), self.cfg.step_timeout_s, "the constructor")
            first = call_with_timeout(ep.env.reset, self.cfg.step_timeout_s, "reset", row)
            if first is not None and not isinstance(first, str):
                raise EnvError(f"reset returned {type(first).__name__}, expected str or None")
            if first:
                ep.prompt_ids += self.tokenizer(first, add_special_tokens=False)["input_ids"]
                ep.history.append(Turn("observation", first))
        except EnvError as e:
            self._fail(ep, e)
        return ep

    def _turn(self, ep: Episode, turn: int, ids: list[int], logprobs: list[float], version: int) -> None:
        room = self.budget - len(ep.response_ids)
        ep.add(list(ids[:room]), list(logprobs[:room]), generated=True, turn=turn)
        ep.turns, ep.version = turn + 1, min(ep.version, version)
        ep.history.append(Turn("model", self.tokenizer.decode(ids[:room], skip_special_tokens=True)))
        if len(ids) > room or len(ep.response_ids) >= self.budget:
            ep.end = "length"
            return
        t0 = time.perf_counter()
        try:
            result = check_step(call_with_timeout(ep.env.step, self.cfg.step_timeout_s, "step", list(ep.history)))
        except EnvError as e:
            self._fail(ep, e)
            return
        finally:
            ep.env_seconds += time.perf_counter() - t0
        if result.reward is not None and ids:
            ep.token_rewards[-1] += float(result.reward)
        if result.done:
            ep.end = "done"
            return
        if turn + 1 >= self.cfg.max_turns:
            ep.end = "max_turns"
            return
        if result.observation:
            text = self.wrap[0] + result.observation + self.wrap[1]
            obs = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            room = self.budget - len(ep.response_ids)
            ep.add(obs[:room], [0.0] * len(obs[:room]), generated=False, turn=turn)
            ep.history.append(Turn("observation", result.observation))
            if len(obs) >= room:
                ep.end = "truncated_observation" if len(obs) > room else "length"

    def _fail(self, ep: Episode, err: EnvError) -> None:
        ep.end, ep.error = "env_error", str(err)
        log.warning("episode of prompt %s (group %d) ended at turn %d: environment %s; dropped from the update",
                    ep.row.key, ep.group, ep.turns, err)

    def _record(self, ep: Episode) -> Record:
        reward = None
        if ep.error is None:
            try:
                reward = float(call_with_timeout(ep.env.score, self.cfg.step_timeout_s, "score", list(ep.history)))
                if not math.isfinite(reward):
                    raise EnvError(f"score returned {reward}")
            except (EnvError, TypeError, ValueError) as e:
                self._fail(ep, e if isinstance(e, EnvError) else EnvError(f"score returned a non-number: {e}"))
                reward = None
        info = {"turns": ep.turns, "tool_calls": getattr(ep.env, "tool_calls", None),
                "tool_errors": getattr(ep.env, "tool_errors", None), "env_seconds": ep.env_seconds, "end": ep.end,
                "error": ep.error, "teacher": self._teacher(ep)}
        if self._checks_template(ep):
            info["template_mismatch"] = self._template_check(ep)
        return Record(ep.row, ep.group, ep.prompt_ids, ep.response_ids, ep.logprobs, ep.end == "done",
                      ep.version if ep.response_ids else 0, reward, loss_mask=ep.loss_mask, turn_ids=ep.turn_ids,
                      token_rewards=ep.token_rewards, episode=info)

    def _checks_template(self, ep: Episode) -> bool:
        return self.cfg.observation_format == "chat" and self.cfg.template_check != "off" and \
            isinstance(ep.row.prompt, list)

    def _template_check(self, ep: Episode) -> int | None:
        """rltrain/driver/flow/chat_check.py on a chat episode (`env.template_check`): the first token where a
        re-render of the conversation would differ from what the learner trains on; a stop when asked."""
        where = template_mismatch(self.tokenizer, ep.row.prompt, ep.history, ep.prompt_ids + ep.response_ids)
        if where is not None and self.cfg.template_check == "stop":
            raise ValueError(f"env.template_check=stop: the episode of prompt {ep.row.key} differs from the chat "
                             f"template's render of its conversation at token {where} (training uses the generated "
                             "ids; a re-render would not)")
        return where

    def _teacher(self, ep: Episode) -> tuple[list[int], list[int]] | None:
        """The pseudo answer for IGPO's teacher forcing, as (prefix ids, answer ids), if the env gives one
        (tokenised once per prompt, not once per episode)."""
        if ep.row.key not in self._teacher_cache:
            fn = getattr(ep.env, "answer_for_teacher_forcing", None)
            pair = fn(ep.row) if fn is not None and ep.row.answer is not None else None
            enc = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
            self._teacher_cache[ep.row.key] = None if pair is None else (enc(pair[0]), enc(pair[1]))
        return self._teacher_cache[ep.row.key]
