"""Console progress of a run: a live bar on a terminal, plain lines elsewhere.

On a terminal (`stream.isatty()`) each step redraws one line in place:

    [rltrain] 12/120 [##-----------------]  10% ETA 1m23s | reward 0.41 | pass@1 0.22 (step 10) | 0.64 s/step

and evaluations are printed as lines of their own above the bar. When the output is not a
terminal (CI logs, `ray job logs`, a Tune trial) every step is one plain line with the same facts,
so logs stay greppable. The ETA is the steps left times the mean wall time between the step lines
this process printed (evaluations and checkpoints included); after the first step, that step's time.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

# (metric, short name) shown on each step's line, when the step logged it
STEP_KEYS = [("rollout/reward_mean", "reward"), ("actor/entropy", "entropy"),
             ("rollout/response_length_mean", "len"), ("actor/pg_loss", "loss"),
             ("rollout/logprob_diff", "lpdiff"), ("sft/loss", "loss"), ("eval/loss", "eval_loss"),
             ("timing_s/step", "step_s")]
BAR_WIDTH = 20


def format_duration(seconds: float) -> str:
    """73 -> '1m13s', 3725 -> '1h02m', 9 -> '9s'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = 0 if total <= 0 else min(width, int(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Progress:
    """Step k of N with an ETA, the step's reward and the last evaluation's pass@1."""

    def __init__(self, total_steps: int, stream: TextIO | None = None, live: bool | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.clock = clock
        self.last_eval: tuple[int, float] | None = None
        self.first: tuple[int, float, float] | None = None  # (step, wall clock, its timing_s/step) of the first line
        self._bar_open = False

    def eta_s(self, step: int, now: float) -> float | None:
        """Seconds left: (steps left) x (wall time per step since the first step line, or that step's time)."""
        if self.first is None:
            return None
        first_step, t_first, first_step_s = self.first
        per_step = (now - t_first) / (step - first_step) if step > first_step else first_step_s
        return per_step * max(0, self.total - step)

    def _start(self, step: int, step_s: float) -> None:
        if self.first is None:  # a resumed run starts counting at its first step
            self.first = (step, self.clock(), step_s)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        has_step = "timing_s/step" in metrics
        if "eval/pass@1" in metrics:
            self.last_eval = (step, metrics["eval/pass@1"])
            if not has_step:  # an evaluation alone (before / after training)
                self._line(self.eval_line(step, metrics))
                return
        if has_step:
            self._start(step, metrics["timing_s/step"])
            if self.live:
                self._redraw(self.bar_line(step, metrics))
            else:
                self._line(self.plain_line(step, metrics))

    def eval_line(self, step: int, metrics: dict[str, float]) -> str:
        keys = sorted(k for k in metrics if k.startswith("eval/pass@") or k == "eval/greedy_pass@1")
        return f"[rltrain] eval at step {step}: " + " ".join(f"{k[5:]}={metrics[k]:.3f}" for k in keys)

    def _eta_and_eval(self, step: int) -> tuple[str, str | None]:
        eta = self.eta_s(step, self.clock())
        eta_text = f"ETA {format_duration(eta)}" if eta is not None else "ETA ?"
        eval_text = None if self.last_eval is None else f"pass@1 {self.last_eval[1]:.3f} (step {self.last_eval[0]})"
        return eta_text, eval_text

    def plain_line(self, step: int, metrics: dict[str, float]) -> str:
        pct = 100 * step / self.total if self.total else 100.0
        eta, last_eval = self._eta_and_eval(step)
        facts = ", ".join(f for f in (eta, last_eval) if f)
        values = " ".join(f"{short}={metrics[k]:.4g}" for k, short in STEP_KEYS if k in metrics)
        return f"[rltrain] step {step}/{self.total} ({pct:.0f}%, {facts}): {values}"

    def bar_line(self, step: int, metrics: dict[str, float]) -> str:
        pct = 100 * step / self.total if self.total else 100.0
        eta, last_eval = self._eta_and_eval(step)
        parts = [f"[rltrain] {step}/{self.total} {bar(step, self.total)} {pct:3.0f}% {eta}"]
        if "rollout/reward_mean" in metrics:
            parts.append(f"reward {metrics['rollout/reward_mean']:.3f}")
        if last_eval:
            parts.append(last_eval)
        if "timing_s/step" in metrics:
            parts.append(f"{metrics['timing_s/step']:.2f} s/step")
        return " | ".join(parts)

    def _redraw(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._bar_open = True

    def _line(self, text: str) -> None:
        if self._bar_open:  # keep the bar: end its line, print, and let the next step redraw it
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_open = False
