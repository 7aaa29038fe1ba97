"""The config of reward-model training (`launch/train_rm.py --config configs/rm_<x>.yaml`), on the
same loader and the learner's section (ranks, ZeRO stage, optimizer, micro-batches)."""

from __future__ import annotations

from pydantic import Field, model_validator

from rltrain.config.loader import Section, load_config
from rltrain.config.schema import LearnerConfig


class PreferenceDataConfig(Section):
    """`path`: a JSONL/Parquet file of prompt / chosen / rejected rows (held-out: `test_path`, else the
    last `test_fraction` of the file); without a path, the built-in pairs of `task`."""

    path: str | None = None
    test_path: str | None = None
    test_fraction: float = Field(0.1, gt=0, lt=1)
    task: str = "rev4"  # built-in pairs: correct over wrong, concise over rambling (rltrain/rm/preferences.py)
    n_train: int = Field(3000, ge=1)
    n_test: int = Field(300, ge=1)


class RMTrainingConfig(Section):
    steps: int = Field(200, ge=1)  # optimizer steps
    pairs_per_step: int = Field(32, ge=1)
    eval_every: int = Field(50, ge=0)  # steps between held-out evaluations (0 = before and after only)
    max_length: int = Field(512, ge=8)  # tokens per prompt + completion (truncated from the left)
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None  # default rm-<time>


class RMConfig(Section):
    model_path: str | None = None  # null = the embedded default policy's weights (a fresh scalar head)
    data: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    learner: LearnerConfig = Field(default_factory=lambda: LearnerConfig(lr=2e-4, micro_batch_size=32))
    train: RMTrainingConfig = Field(default_factory=RMTrainingConfig)

    @model_validator(mode="after")
    def _whole_model(self) -> "RMConfig":
        if self.learner.lora.rank or self.learner.compile_layers:
            raise ValueError("learner.lora and learner.compile_layers are not supported for reward models")
        return self


def load_rm(yaml_path: str | None = None, overrides: list[str] | dict | None = None) -> RMConfig:
    return load_config(RMConfig, yaml_path, overrides)
