"""Metrics to W&B, the console (driver/reporting/progress.py: a live bar on a terminal, plain lines
elsewhere), `metrics.jsonl` in the run directory, and any subscriber (a sweep's trial reports
evaluations to Ray Tune through one).

W&B runs offline when no API key is configured (and says where the run is written); runs of one
sweep share `logging.wandb_group`. Metric names follow verl-style namespaces: rollout/*, reward/*,
actor/*, timing_s/*, perf/*, eval/*.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from rltrain.config.schema import LoggingConfig
from rltrain.driver.reporting.progress import Progress

Subscriber = Callable[[int, dict[str, float]], None]  # (step, metrics) after each log


def _wandb_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").exists()
    return "online" if has_key else "offline"


class Tracker:
    def __init__(self, cfg: LoggingConfig, run_dir: Path, run_name: str, config: dict[str, Any],
                 resume_id: str | None = None, total_steps: int = 0) -> None:
        self.cfg = cfg
        self.path = run_dir / "metrics.jsonl"
        self.progress = Progress(total_steps) if cfg.console else None
        self.subscribers: list[Subscriber] = []
        self.wandb_run = None
        self.wandb_dir: str | None = None
        if cfg.wandb and _wandb_mode(cfg.wandb_mode) != "disabled":
            import wandb

            mode = _wandb_mode(cfg.wandb_mode)
            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb_run = wandb.init(project=cfg.wandb_project, name=run_name, config=config, mode=mode,
                                        dir=str(run_dir), id=resume_id,
                                        group=cfg.wandb_group, resume="allow" if resume_id else None)
            self.wandb_dir = str(Path(self.wandb_run.dir).parent)
            if mode == "offline":
                print(f"[rltrain] W&B offline (no API key): run written to {self.wandb_dir}; "
                      f"upload later with `wandb sync {self.wandb_dir}`", flush=True)

    @property
    def wandb_id(self) -> str | None:
        return self.wandb_run.id if self.wandb_run is not None else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: (v if isinstance(v, str) else float(v)) for k, v in metrics.items() if v is not None}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **{k: (v if isinstance(v, str) or math.isfinite(v) else None)
                                                 for k, v in clean.items()}}) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log(clean, step=step)
        if self.progress is not None:
            self.progress.log(step, clean)
        for subscriber in self.subscribers:
            subscriber(step, clean)

    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
