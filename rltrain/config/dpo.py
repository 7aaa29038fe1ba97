"""The config of preference optimisation (`launch/dpo.py --config configs/dpo_<x>.yaml`): DPO, IPO and
SimPO on the policy learner's section (ranks, ZeRO stage, LoRA, micro-batches, optimizer), the preference
data of reward-model training, and W&B logging. Validated when it loads: unknown keys and bad values fail
naming the key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rltrain.config.loader import Section, load_config
from rltrain.config.rm import PreferenceDataConfig
from rltrain.config.schema import LearnerConfig


class DPOLossConfig(Section):
    """`loss`: sigmoid (DPO), ipo, or simpo (no reference); rltrain/dpo/losses.py has the formulas."""

    loss: Literal["sigmoid", "ipo", "simpo"] = "sigmoid"
    beta: float = Field(0.1, gt=0)  # DPO's beta, IPO's tau, SimPO's beta
    gamma: float = 0.5  # SimPO's target reward margin (TRL CPOConfig.simpo_gamma's default)
    ipo_token_mean: bool = True  # IPO on per-token mean log-ratios, as TRL does (false: eq. 17 on sums)
    reference_path: str | None = None  # the frozen reference; null = the policy's starting weights


class DPOTrainingConfig(Section):
    steps: int = Field(100, ge=1)  # optimizer steps
    pairs_per_step: int = Field(32, ge=1)
    eval_every: int = Field(20, ge=0)  # steps between held-out evaluations (0 = before and after only)
    max_length: int = Field(512, ge=8)  # tokens per prompt + completion (the prompt is cut from the left)
    save_every: int = Field(0, ge=0)  # checkpoint every k steps (0 = only at the end)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None  # default dpo-<time>
    resume: str | None = None  # a run directory: continue from its newest checkpoint (launch/dpo.py --resume)
    num_cpus: int | None = None  # CPUs of the local Ray instance (null: Ray's count; ignored under RAY_ADDRESS)


class DPOLoggingConfig(Section):
    wandb: bool = True
    wandb_project: str = "rltrain"
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"  # auto: offline without a key
    wandb_group: str | None = None
    console: bool = True  # one progress line per step


class DPOConfig(Section):
    model_path: str | None = None  # null = the embedded default policy
    dtype: Literal["float32", "bfloat16"] = "float32"  # the learners' and the reference's precision
    gradient_checkpointing: bool = False
    data: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    learner: LearnerConfig = Field(default_factory=lambda: LearnerConfig(lr=1e-5, micro_batch_size=16))
    dpo: DPOLossConfig = Field(default_factory=DPOLossConfig)
    train: DPOTrainingConfig = Field(default_factory=DPOTrainingConfig)
    logging: DPOLoggingConfig = Field(default_factory=DPOLoggingConfig)

    @model_validator(mode="after")
    def _checks(self) -> "DPOConfig":
        if self.dpo.loss == "simpo" and self.dpo.reference_path is not None:
            raise ValueError("dpo.reference_path: SimPO uses no reference; leave it null or pick dpo.loss sigmoid/ipo")
        if self.learner.mini_batches != 1 or self.learner.epochs != 1:
            raise ValueError("learner.mini_batches and learner.epochs: one optimizer step per train.pairs_per_step "
                             "pairs in preference training; leave them at 1")
        if self.learner.max_tokens_per_micro_batch:
            raise ValueError("learner.max_tokens_per_micro_batch: preference training cuts micro-batches by pairs "
                             "(learner.micro_batch_size); leave it at 0")
        return self


def load_dpo(yaml_path: str | None = None, overrides: list[str] | dict | None = None) -> DPOConfig:
    return load_config(DPOConfig, yaml_path, overrides)
