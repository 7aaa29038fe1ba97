"""The config of supervised fine-tuning (`launch/sft.py --config configs/sft_<x>.yaml`), on the same loader
and the learner's section (ranks, ZeRO stage, LoRA, precision, micro-batches, optimizer)."""

from __future__ import annotations

from pydantic import Field, model_validator

from rltrain.config.loader import Section, load_config
from rltrain.config.roles import LearnerConfig
from rltrain.config.schema import LoggingConfig

__all__ = ["SFTConfig", "SFTDataConfig", "SFTTrainingConfig", "load_sft"]


class SFTDataConfig(Section):
    """Demonstrations. `path`: a JSONL / JSON / Parquet / CSV file, a directory `datasets.save_to_disk`
    wrote, or a directory of data files `datasets.load_dataset` reads; rows are conversations
    (`messages_key`) or prompt / completion pairs (text or messages; `prompt_key`, `completion_key`).
    Held out: `test_path`, else the last `test_fraction` of the rows. Without a path: the built-in task's
    prompts with their correct answers (`task`, for the embedded default model)."""

    path: str | None = None
    test_path: str | None = None
    split: str = "train"  # of a DatasetDict
    test_fraction: float = Field(0.1, gt=0, lt=1)
    prompt_key: str = "prompt"
    completion_key: str = "completion"
    messages_key: str = "messages"
    task: str = "default"
    n_train: int = Field(2000, ge=1)
    n_test: int = Field(200, ge=1)


class SFTTrainingConfig(Section):
    steps: int = Field(100, ge=1)  # optimizer steps
    examples_per_step: int = Field(32, ge=1)
    max_length: int = Field(512, ge=8)  # tokens per example (longer ones are cut)
    packing: bool = False  # pack examples into rows of max_length tokens (each attends to itself only)
    eval_every: int = Field(25, ge=0)  # steps between held-out evaluations (0: before and after only)
    save_every: int = Field(0, ge=0)  # checkpoint every k steps (0: at the end only)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None  # default sft-<time>
    resume: str | None = None  # a run directory: continue from its last checkpoint


class SFTConfig(Section):
    model_path: str | None = None  # null = the embedded default model for data.task
    dtype: str = Field("float32", pattern="^(float32|bfloat16)$")
    data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    learner: LearnerConfig = Field(default_factory=lambda: LearnerConfig(lr=1e-4, micro_batch_size=32))
    train: SFTTrainingConfig = Field(default_factory=SFTTrainingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _plain_lm(self) -> "SFTConfig":
        if self.learner.compile_layers and self.train.packing:
            raise ValueError("train.packing with learner.compile_layers is not supported (packed rows change shape)")
        if self.learner.mini_batches != 1 or self.learner.epochs != 1:
            raise ValueError("learner.mini_batches and learner.epochs: one optimizer step per train.examples_per_step "
                             "examples in SFT; leave them at 1")
        return self


def load_sft(yaml_path: str | None = None, overrides: list[str] | dict | None = None) -> SFTConfig:
    return load_config(SFTConfig, yaml_path, overrides)
