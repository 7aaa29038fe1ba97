"""A picture of one run or several: `runs/<run>/report.png`, and `launch/report.py` to overlay runs.

Reads each run's `metrics.jsonl` (one JSON object per log call, with its `step`) and draws six
panels: training reward, evaluation pass@k, entropy, response length, clip fractions, and the step
time split by phase (generation, log-prob passes, update, weight sync, the rest). One run draws the
phases stacked over the steps; several runs draw one stacked bar each (mean seconds per step).

The PNG carries a text chunk `rltrain-panels` (JSON: each panel's title and how many curves it
drew), so a test or a script can check what is in the picture without reading pixels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rltrain.data.datasets import iter_jsonl

PHASES = [("timing_s/gen", "generation"), ("timing_s/logprob", "log-probs"), ("timing_s/update", "update"),
          ("timing_s/weight_sync_total", "sync")]
PHASE_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8c8c8c"]  # not the runs' colours C0, C1, ...


@dataclass
class RunMetrics:
    label: str
    rows: list[dict[str, float]]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) where the row has a finite value for `key`; the last value of a step wins."""
        by_step: dict[int, float] = {}
        for row in self.rows:
            v = row.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                by_step[int(row["step"])] = float(v)
        steps = sorted(by_step)
        return steps, [by_step[s] for s in steps]

    def keys(self) -> set[str]:
        return {k for row in self.rows for k in row}


def read_metrics(run_dir: Path, label: str | None = None) -> RunMetrics:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (is it a run directory?)")
    rows = [row for _, row in iter_jsonl(path) if isinstance(row, dict) and "step" in row]
    return RunMetrics(label or Path(run_dir).name, rows)


def _eval_keys(runs: list[RunMetrics]) -> list[str]:
    keys = {k for r in runs for k in r.keys() if k.startswith("eval/pass@") or k == "eval/greedy_pass@1"}
    def order(k: str) -> tuple[int, int]:
        tail = k.rsplit("@", 1)[-1]
        return (1 if "greedy" in k else 0, int(tail) if tail.isdigit() else 0)
    return sorted(keys, key=order)


def _line_panel(ax, runs: list[RunMetrics], keys: list[tuple[str, str]], title: str, ylabel: str,
                fraction: bool = False) -> int:
    """Plot every (key, legend name) of every run: colour = run (the figure's legend), line style = key
    (this panel's legend). Returns the number of curves drawn."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    styles = ["-", "--", ":", "-."]
    curves, used, top, smoothed = 0, [], 0.0, 0
    for i, run in enumerate(runs):
        for j, (key, name) in enumerate(keys):
            steps, values = run.series(key)
            if not steps:
                continue
            window = smoothing_window(len(steps))
            if window > 1:  # noisy per-step values: faint, with their running mean drawn bold
                ax.plot(steps, values, styles[j % len(styles)], color=f"C{i}", linewidth=0.8, alpha=0.3)
                values_shown, smoothed = running_mean(values, window), max(smoothed, window)
            else:
                values_shown = values
            ax.plot(steps, values_shown, styles[j % len(styles)], color=f"C{i}", linewidth=1.6,
                    marker="o" if len(steps) <= 12 else None, markersize=3.5)
            curves += 1
            top = max(top, max(values))
            if name not in used:
                used.append(name)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if smoothed:
        ax.text(0.99, 0.01, f"bold: mean of the last {smoothed} steps",
                ha="right", va="bottom", transform=ax.transAxes, fontsize=7, color="0.4")
    if fraction and curves:
        ax.set_ylim(0, max(0.01, 1.15 * top))
        if top == 0:
            ax.text(0.5, 0.5, "all zero", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if len(used) > 1:
        handles = [Line2D([], [], color="0.3", linestyle=styles[keys.index(next(k for k in keys if k[1] == n)) % 4])
                   for n in used]
        ax.legend(handles, used, fontsize=8, frameon=False)
    if not curves:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
    return curves


def smoothing_window(n_points: int) -> int:
    """1 (no smoothing) up to 30 points, then about n/15 steps."""
    return 1 if n_points <= 30 else max(3, n_points // 15)


def running_mean(values: list[float], window: int) -> list[float]:
    """Mean of each value and the up to `window - 1` before it: [1, 2, 3, 4], 2 -> [1, 1.5, 2.5, 3.5]."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def headline(run: RunMetrics) -> str:
    """'<label>: pass@1 0.180 -> 0.211, 2 steps, 0.88 s/step' from what the run logged."""
    parts = [run.label]
    _, evals = run.series("eval/pass@1")
    if evals:
        parts.append(f"pass@1 {evals[0]:.3f} -> {evals[-1]:.3f}" if len(evals) > 1 else f"pass@1 {evals[0]:.3f}")
    steps, times = run.series("timing_s/step")
    if steps:
        parts.append(f"{steps[-1]} steps, {sum(times) / len(times):.2f} s/step")
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def _phase_panel(ax, runs: list[RunMetrics]) -> int:
    """Stacked phase times: over the steps for one run, one mean bar per run for several."""
    names = [name for _, name in PHASES] + ["other"]

    def phase_rows(run: RunMetrics) -> tuple[list[int], list[list[float]]]:
        steps, totals = run.series("timing_s/step")
        parts = {key: dict(zip(*run.series(key))) for key, _ in PHASES}
        cols = [[parts[key].get(s, 0.0) for s in steps] for key, _ in PHASES]
        cols.append([max(0.0, t - sum(c[i] for c in cols)) for i, t in enumerate(totals)])
        return steps, cols

    ax.set_title("step time by phase", fontsize=11, loc="left")
    ax.grid(alpha=0.3)
    if len(runs) == 1:
        steps, cols = phase_rows(runs[0])
        if not steps:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
            return 0
        from matplotlib.ticker import MaxNLocator

        ax.stackplot(steps, cols, labels=names, colors=PHASE_COLOURS, alpha=0.85)
        ax.set_xlabel("step")
        ax.set_ylabel("seconds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return len(names)
    bars = 0
    for i, run in enumerate(runs):
        steps, cols = phase_rows(run)
        if not steps:
            continue
        left = 0.0
        for j, col in enumerate(cols):
            mean = sum(col) / len(col)
            ax.barh(i, mean, left=left, color=PHASE_COLOURS[j], label=names[j] if bars == 0 else None)
            left += mean
        bars += 1
    ax.set_yticks(range(len(runs)), [r.label for r in runs], fontsize=8)
    for tick, i in zip(ax.get_yticklabels(), range(len(runs))):
        tick.set_color(f"C{i}")
    ax.set_xlabel("mean seconds per step")
    if bars:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return bars


def RL_PANELS(eval_keys: list[tuple[str, str]]) -> list[tuple[str, tuple | None]]:  # noqa: N802 - a table
    """An RL run's six panels: (name, `_line_panel` arguments after the axes and runs; None = step times)."""
    return [
        ("training reward", ([("rollout/reward_mean", "reward mean")], "training reward (mean over samples)", "reward")),
        ("eval pass@k", (eval_keys, "held-out pass@k", "pass rate", True)),
        ("entropy", ([("actor/entropy", "entropy")], "policy entropy (nats/token)", "nats")),
        ("response length", ([("rollout/response_length_mean", "mean"), ("rollout/response_length_max", "max")],
                             "response length (tokens)", "tokens")),
        ("clip fractions", ([("actor/clipfrac_low", "low (A<0)"), ("actor/clipfrac_high", "high (A>0)")],
                            "clipped token fraction", "fraction", True)),
        ("step time by phase", None),
    ]


# a supervised run's (SFT, DPO) six panels
SUPERVISED_PANELS: list[tuple[str, tuple | None]] = [
    ("training loss", ([("sft/loss", "SFT token loss"), ("loss", "DPO loss")], "training loss", "loss")),
    ("held-out loss", ([("eval/loss", "SFT token loss"), ("eval_loss", "DPO loss")], "held-out loss", "loss")),
    ("preference accuracy", ([("rewards/accuracies", "train"), ("eval_rewards/accuracies", "held-out")],
                             "chosen ranked above rejected", "fraction", True)),
    ("reward margins", ([("rewards/margins", "train"), ("eval_rewards/margins", "held-out")],
                        "implicit reward margin (chosen - rejected)", "margin")),
    ("gradient norm", ([("sft/grad_norm", "SFT"), ("grad_norm", "DPO")], "gradient norm", "norm")),
    ("step time", ([("timing_s/step", "step")], "step time", "seconds")),
]


def write_report(runs: list[RunMetrics], out: Path, title: str | None = None, dpi: int = 90) -> Path:
    """Draw six panels for `runs` (an RL run's, or a supervised run's when no run logged a training
    reward) into the PNG `out` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5), constrained_layout=True)
    eval_keys = [(k, k[5:]) for k in _eval_keys(runs)]
    rl = any("rollout/reward_mean" in r.keys() for r in runs)
    specs = RL_PANELS(eval_keys) if rl else SUPERVISED_PANELS
    panels = [(name, _line_panel(ax, runs, *args) if args is not None else _phase_panel(ax, runs))
              for ax, (name, args) in zip(axes.flat, specs)]
    if len(runs) == 1:
        fig.suptitle(title or headline(runs[0]), fontsize=13)
    else:
        from matplotlib.lines import Line2D

        fig.suptitle(title or "runs", fontsize=13)
        fig.legend([Line2D([], [], color=f"C{i}", linewidth=3) for i in range(len(runs))],
                   [headline(r) for r in runs], loc="outside lower center", ncol=min(3, len(runs)), fontsize=9,
                   frameon=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"rltrain-panels": json.dumps([{"title": t, "curves": n} for t, n in panels]),
            "rltrain-runs": json.dumps([r.label for r in runs])}
    fig.savefig(out, dpi=dpi, metadata=meta)
    plt.close(fig)
    return out


def write_run_report(run_dir: Path) -> Path | None:
    """`run_dir/report.png` for one finished run; a failure to draw is logged, never fatal to the run."""
    try:
        return write_report([read_metrics(run_dir)], Path(run_dir) / "report.png")
    except Exception as e:  # noqa: BLE001 - the run's results are already saved; the picture is extra
        print(f"[rltrain] could not write {run_dir}/report.png: {type(e).__name__}: {e}", flush=True)
        return None


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG (keyword -> text); raises ValueError for a file that is not a PNG."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    out, pos = {}, 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise ValueError(f"{path}: bad CRC in a {kind!r} chunk")
        if kind == b"tEXt":
            key, _, text = body.partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        pos += 12 + length
        if kind == b"IEND":
            break
    return out
