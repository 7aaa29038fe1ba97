"""The sections of the roles that hold weights or pin actors: learner ranks (and LoRA), the critic,
the reference, and the custom Ray resources per role. Part of the run config (rltrain/config/schema.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rltrain.config.loader import Section


class LoRAConfig(Section):
    """LoRA adapters through peft (rltrain/workers/lora.py): rank 0 = full fine-tuning. Only the adapters
    train; engines get merged weights at each sync; checkpoints hold the adapters and their optimizer
    state; the export is a merged plain model directory."""

    rank: int = Field(0, ge=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj"])


class LearnerConfig(Section):
    """DeepSpeed learners: one Ray actor per rank."""

    num_ranks: int = Field(1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 0  # with bf16 weights 0 runs as 1 (fp32 gradient accumulation needs ZeRO-1)
    micro_batch_size: int = Field(64, ge=1)  # sequences per forward/backward on one rank
    # and at most this many padded tokens (rows x longest row) per micro-batch; 0 = rows only. Rows are
    # bucketed by length either way (rltrain/workers/sharding.py); the loss does not depend on the cuts
    max_tokens_per_micro_batch: int = Field(0, ge=0)
    mini_batches: int = Field(1, ge=1)  # optimizer steps per rollout batch
    epochs: int = Field(1, ge=1)  # passes over the rollout batch
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = 0.0
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    warmup_steps: int = Field(0, ge=0)
    threads: int = Field(0, ge=0)  # torch threads per rank on CPU; 0 = auto (see rltrain/workers)
    force_old_logprob_pass: bool = False  # recompute old log-probs even for one on-policy step
    # attention kernel of the learner (and reference) forward/backward: transformers' `sdpa` or `eager`
    # (matmul + softmax; which is faster depends on the device and lengths: docs/benchmarks.md)
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # torch.compile each decoder layer (one compiled graph shared by all layers, dynamic shapes): the
    # first steps pay the compilation; ZeRO-0/1/2 only
    compile_layers: bool = False
    # rows that share a prompt (a group's samples) run it once: the responses attend to its cached
    # keys/values (rltrain/workers/logprobs.py); the same log-probs and gradients on fewer tokens
    share_prompts: bool = True
    lora: LoRAConfig = Field(default_factory=LoRAConfig)

    @model_validator(mode="after")
    def _compile_without_zero3(self) -> "LearnerConfig":
        if self.compile_layers and self.zero_stage == 3:
            raise ValueError("learner.compile_layers with learner.zero_stage 3 is not supported (ZeRO-3's parameter "
                             "hooks break the compiled graphs); use zero_stage 0-2")
        return self

    @model_validator(mode="after")
    def _lora_without_zero3(self) -> "LearnerConfig":
        if self.lora.rank and self.zero_stage == 3:
            raise ValueError("learner.lora.rank > 0 with learner.zero_stage 3 is not supported (the merged weights "
                             "are built from whole parameters); use zero_stage 0-2")
        return self

    @field_validator("betas")
    @classmethod
    def _two_betas(cls, betas: list[float]) -> list[float]:
        if len(betas) != 2:
            raise ValueError(f"must be a list of two floats, got {betas!r}")
        return betas


class CriticConfig(LearnerConfig):
    """The value model of PPO (rltrain/workers/critic.py), started when the algorithm reads `values`
    (the `ppo` preset). Its ranks, ZeRO stage, micro-batches, optimizer and schedule as the learner's."""

    path: str | None = None  # None: the policy's initial backbone, a zero head; a reward model: its backbone and head
    lr: float = Field(5e-5, gt=0)
    value_clip: float = Field(0.2, ge=0)  # |V - V_old| <= value_clip in the clipped branch; 0 = no clipping
    warmup_steps: int = Field(0, ge=0)  # lr warm-up of the critic's optimizer
    policy_frozen_steps: int = Field(0, ge=0)  # the first k steps train only the critic (critic warm-up)

    @model_validator(mode="after")
    def _plain_value_model(self) -> "CriticConfig":
        if self.lora.rank or self.compile_layers:
            raise ValueError("critic.lora and critic.compile_layers are not supported: the critic trains its whole "
                             "value model")
        return self


class ReferenceConfig(Section):
    """Frozen reference policy actor; started only when the algorithm needs reference log-probs."""

    path: str | None = None  # None = the initial policy


class ResourcesConfig(Section):
    """Extra Ray resources each actor's bundle asks for, by role. Custom node resources pin roles to
    nodes: `ray start --resources '{"rollout_node": 8}'` on the generation nodes and
    `rollout: {rollout_node: 1}` here put every rollout worker there. Empty: Ray packs the bundles."""

    learner: dict[str, float] = Field(default_factory=dict)  # each learner rank (colocated: the engine too)
    rollout: dict[str, float] = Field(default_factory=dict)  # each rollout worker
    reference: dict[str, float] = Field(default_factory=dict)
    critic: dict[str, float] = Field(default_factory=dict)  # each critic rank (PPO)

    @field_validator("learner", "rollout", "reference", "critic")
    @classmethod
    def _positive_custom(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for name, amount in v.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"resources.{info.field_name}.{name}: CPUs and GPUs are sized by rltrain; name a "
                                 "custom node resource here")
            if not amount > 0:
                raise ValueError(f"resources.{info.field_name}.{name} must be > 0, got {amount}")
        return v
