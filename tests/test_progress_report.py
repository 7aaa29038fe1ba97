"""The console progress (a live bar on a terminal, plain lines elsewhere) and the run report PNG."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rltrain.driver.reporting.progress import Progress, bar, format_duration
from rltrain.driver.reporting.report import png_text, read_metrics, write_report


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_duration_and_bar_by_hand():
    assert [format_duration(s) for s in (9, 73, 3725)] == ["9s", "1m13s", "1h02m"]
    assert bar(5, 20, width=10) == "[##--------]"
    assert bar(20, 20, width=4) == "[####]"


def test_plain_lines_carry_step_of_total_eta_reward_and_last_eval():
    out, clock = io.StringIO(), Clock()
    p = Progress(10, out, live=False, clock=clock)
    p.log(0, {"eval/pass@1": 0.25, "eval/pass@4": 0.5})  # the evaluation before training
    p.log(1, {"rollout/reward_mean": 0.5, "timing_s/step": 3.0})  # first step: ETA = 9 steps x its 3 s
    clock.t += 10.0
    p.log(2, {"rollout/reward_mean": 0.75, "timing_s/step": 2.0})  # then 10 s per step of wall time, 8 left
    lines = out.getvalue().splitlines()
    assert lines[0] == "[rltrain] eval at step 0: pass@1=0.250 pass@4=0.500"
    assert lines[1].startswith("[rltrain] step 1/10 (10%, ETA 27s, pass@1 0.250 (step 0)): reward=0.5 ")
    assert lines[2].startswith("[rltrain] step 2/10 (20%, ETA 1m20s, pass@1 0.250 (step 0)): reward=0.75 ")
    assert "\r" not in out.getvalue()


def test_live_bar_redraws_one_line_and_keeps_evaluations_above_it():
    out, clock = io.StringIO(), Clock()
    p = Progress(4, out, live=True, clock=clock)
    p.log(1, {"rollout/reward_mean": 0.5, "timing_s/step": 1.0})
    clock.t += 2.0
    p.log(2, {"rollout/reward_mean": 0.6, "timing_s/step": 1.0, "eval/pass@1": 0.4})
    p.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("\n")
    first, second = text.split("\r\033[K")[1:]
    assert first == "[rltrain] 1/4 [#####---------------]  25% ETA 3s | reward 0.500 | 1.00 s/step"
    assert second.startswith("[rltrain] 2/4 [##########----------]  50% ETA 4s | reward 0.600 | pass@1 0.400 (step 2)")


def _write_run(run_dir: Path, steps: int, with_clip: bool = True) -> Path:
    run_dir.mkdir(parents=True)
    rows = [{"step": 0, "eval/pass@1": 0.1, "eval/pass@4": 0.3}]
    for s in range(1, steps + 1):
        row = {"step": s, "rollout/reward_mean": 0.1 * s, "actor/entropy": 1.0 - 0.05 * s,
               "rollout/response_length_mean": 5.0, "rollout/response_length_max": 8.0,
               "timing_s/step": 1.0, "timing_s/gen": 0.5, "timing_s/logprob": 0.1, "timing_s/update": 0.3,
               "timing_s/weight_sync_total": 0.05}
        if with_clip:
            row.update({"actor/clipfrac_low": 0.01, "actor/clipfrac_high": None})  # null: a non-finite value
        rows.append(row)
    rows.append({"step": steps, "eval/pass@1": 0.4, "eval/pass@4": 0.6})
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run_dir


def test_report_png_has_every_panel_with_what_was_logged(tmp_path):
    import matplotlib.image

    run = read_metrics(_write_run(tmp_path / "a", 6))
    assert run.series("eval/pass@1") == ([0, 6], [0.1, 0.4])
    assert run.series("actor/clipfrac_high") == ([], [])  # nulls are skipped, not plotted as zero
    out = write_report([run], tmp_path / "report.png")
    panels = {p["title"]: p["curves"] for p in json.loads(png_text(out)["rltrain-panels"])}
    assert panels == {"training reward": 1, "eval pass@k": 2, "entropy": 1, "response length": 2,
                      "clip fractions": 1, "step time by phase": 5}  # 4 phases + the rest
    h, w, _ = matplotlib.image.imread(out).shape
    assert w > 1000 and h > 600


def test_overlay_of_two_runs_from_the_command_line(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "launch"))
    import report as report_cli

    a, b = _write_run(tmp_path / "a", 3), _write_run(tmp_path / "b", 5, with_clip=False)
    out = tmp_path / "both.png"
    assert report_cli.main([str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    text = png_text(out)
    assert json.loads(text["rltrain-runs"]) == ["a", "b"]
    panels = {p["title"]: p["curves"] for p in json.loads(text["rltrain-panels"])}
    assert panels["training reward"] == 2 and panels["clip fractions"] == 1 and panels["step time by phase"] == 2


def test_malformed_metrics_line_is_named(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: invalid JSON"):
        read_metrics(run)
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        read_metrics(tmp_path / "missing")


def test_png_text_refuses_a_file_that_is_not_a_png(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"GIF89a....")
    with pytest.raises(ValueError, match="not a PNG"):
        png_text(f)


def test_running_mean_and_window_by_hand():
    from rltrain.driver.reporting.report import running_mean, smoothing_window

    assert running_mean([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert running_mean([3.0, 6.0, 9.0], 3) == [3.0, 4.5, 6.0]
    assert [smoothing_window(n) for n in (12, 30, 31, 120, 1000)] == [1, 1, 3, 8, 66]
