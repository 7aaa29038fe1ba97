"""The `data` section: where prompts come from and how they are drawn (uniform, or CurES)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rltrain.config.errors import Section

__all__ = ["CuresConfig", "DataConfig"]


class CuresConfig(Section):
    """`data.sampler: cures` (rltrain/data/cures.py): CurES prompt sampling by a Beta posterior of each
    prompt's success rate, and rollout allocation within each batch's sample budget."""

    form: Literal["paper", "code"] = "paper"  # code: the released sampler's per-prompt temperature (~uniform)
    temperature: float = Field(0.1, gt=0)  # paper form: weights exp(sqrt(p (1 - p)) / temperature)
    prior: Literal["uniform", "pooled"] = "pooled"  # uniform: Beta(1, 1) (paper, code); pooled: the run's rate
    prior_strength: float = Field(2.0, gt=0)  # pooled prior's pseudo-count
    replacement: bool = True  # false: weighted draws without replacement within an epoch (the code's order)
    allocation: bool = True  # per-prompt samples ~ sqrt(p (1 - p)) within prompts x rollout.n_samples
    min_samples: int = Field(2, ge=1)  # per prompt, when allocating
    max_samples: int = Field(0, ge=0)  # per prompt, when allocating; 0 = 2 x rollout.n_samples
    correct_threshold: float = 0.5  # a rollout counts as a success when its reward is above this


class DataConfig(Section):
    """Prompt data: JSONL/Parquet files, or the built-in task when `train_files` is empty. `sampler`:
    `uniform` (a seeded permutation per epoch) or `cures` (options under `data.cures`)."""

    train_files: list[str] = Field(default_factory=list)
    test_files: list[str] = Field(default_factory=list)
    prompt_key: str = "prompt"
    answer_key: str = "answer"
    task: str = "default"  # built-in task family (used when train_files is empty); word_problems: the real model's
    n_train: int = Field(4000, gt=0)
    n_test: int = Field(200, gt=0)
    seed: int = 0
    # word_problems, arithmetic: the evaluation split; test_alt is phrased unlike the training templates
    test_split: Literal["test", "test_alt"] = "test"
    sampler: Literal["uniform", "cures"] = "uniform"
    cures: CuresConfig = Field(default_factory=CuresConfig)

    @model_validator(mode="after")
    def _task_and_split(self) -> "DataConfig":
        from rltrain.data.chat_tasks import ALT_SPLIT_TASKS, CHAT_TASKS, known_task
        from rltrain.data.tasks import TASKS

        if self.train_files:
            return self
        if not known_task(self.task):
            raise ValueError(f"data.task={self.task!r}: unknown task; known tasks: default, "
                             f"{', '.join(sorted([*TASKS, *CHAT_TASKS]))} (or give data.train_files)")
        if self.test_split == "test_alt" and self.task not in ALT_SPLIT_TASKS:
            raise ValueError(f"data.test_split=test_alt: data.task={self.task!r} has no test_alt split (tasks with "
                             f"one: {', '.join(ALT_SPLIT_TASKS)})")
        return self
