"""The environment protocol for multi-turn rollouts (DESIGN.md "Schedules and multi-turn").

One instance per episode, constructed as `Env(**env.options)`. The runtime calls `reset(row)` once,
then, after each model turn, `step(history)`; `history` is the episode so far as `Turn`s (the
prompt's observation from reset, the model's turns as decoded text, the observations). Text is
decoded only for the environment to read: the learner trains on the engine's token ids, and an
observation is tokenised once, when it is appended.

    reset(row) -> str | None           # text appended to the prompt before the first turn (or None)
    step(history) -> StepResult        # observation, done, optional per-turn reward
    score(history) -> float            # the episode's outcome reward, whatever ended it
    answer_for_teacher_forcing(row) -> (prefix, answer) | None   # IGPO: the text whose probability
                                       # after each turn is the ground-truth probability p_k

An environment that raises, hangs past `env.step_timeout_s`, or returns something malformed ends
its episode with a logged reason; the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rltrain.data import PromptRow


@dataclass
class Turn:
    role: str  # "model" or "observation"
    text: str


@dataclass
class StepResult:
    observation: str | None = None
    done: bool = False
    reward: float | None = None  # optional per-turn reward (token_rewards at the turn's last token)


@runtime_checkable
class Environment(Protocol):
    def reset(self, row: PromptRow) -> str | None: ...

    def step(self, history: list[Turn]) -> StepResult: ...

    def score(self, history: list[Turn]) -> float: ...


class EnvError(RuntimeError):
    """An environment misbehaved (raised, timed out, returned a malformed result)."""
