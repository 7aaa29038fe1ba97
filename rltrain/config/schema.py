"""The typed config tree of a training run, as pydantic models, and `load()`.

One `Section` (a strict pydantic model: unknown keys are errors, no type coercion) per section;
`load(yaml_path, overrides)` merges defaults <- YAML <- command-line overrides (`--a.b=1`,
`--a.b 1`, the `a.b=1` form W&B sweep agents pass, or a dict `{"a.b": 1}`) and validates
everything before any actor starts. Every problem raises `ConfigError` naming the dotted key and
what is allowed; keys that moved (`RENAMED`) fail naming the new key. Engine and schedule names are
checked against their registries, and the algorithm section by the `algorithms` package.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rltrain.config.loader import ConfigError, Section, load_config, to_dict
from rltrain.config.data import CuresConfig, DataConfig
from rltrain.config.roles import CriticConfig, LearnerConfig, LoRAConfig, ReferenceConfig, ResourcesConfig

# old dotted key -> what to use instead (the error reads "<old> was renamed: use <new>")
RENAMED: dict[str, str] = {
    "rollout.gpu_memory_utilization": "rollout.vllm.gpu_memory_utilization",
    "rollout.max_model_len": "rollout.vllm.max_model_len",
    "learner.tis_cap": "algorithm.correction.name=tis algorithm.correction.cap=<value>",
}


class ModelConfig(Section):
    """Policy model. `path: null` means the embedded default: a tiny model built and warm-started
    locally on the built-in task (cached on disk, rebuilt when missing)."""

    path: str | None = None
    size: Literal["tiny", "small"] = "tiny"  # embedded default only
    # compute precision of the learner and (rollout.dtype auto) the engines; the learner keeps fp32 master
    # weights. auto: bfloat16 on a GPU, or on a CPU whose bf16 matrix products time faster than float32's
    # (AMX, some AVX-512 BF16 chips), else float32; resolved when the config is loaded, so config.yaml
    # records the choice (rltrain/config/hardware.py)
    dtype: Literal["auto", "float32", "bfloat16"] = "float32"
    gradient_checkpointing: bool = False

    @field_validator("dtype")
    @classmethod
    def _resolve_auto_dtype(cls, v: str) -> str:
        from rltrain.config.hardware import fast_dtype

        return fast_dtype() if v == "auto" else v


class VLLMConfig(Section):
    """Options of the vLLM engine (keyword arguments of its constructor)."""

    # the engine's share of its device's memory (on CPU: of RAM, for the KV cache); null: the placement plan's
    # share on a GPU (0.9 of a GPU of its own, less where it shares one), 0.3 on CPU
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int = Field(512, ge=16)
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs per engine (one node); the placement plan gives them
    # a sampling seed on every request (exact resume; vLLM's slower per-request sampling path); null: on CPU
    # yes, on GPU one engine-level seed
    seed_requests: bool | None = None
    enable_sleep_mode: bool = False  # GPU only: free_memory / restore_memory put the engine to sleep / wake it


class TransformersEngineConfig(Section):
    """Options of the transformers engine. `decode: lean` (default) samples with rltrain's loop
    (rltrain/engines/lean_decode.py: pre-allocated KV cache, no full-vocabulary scores kept; figures in
    docs/benchmarks.md); `generate` calls transformers `generate`."""

    decode: Literal["lean", "generate"] = "lean"


class RolloutConfig(Section):
    """Generation. `engine: auto` picks vLLM when a GPU is present and transformers `generate`
    otherwise (the faster one for tiny models on a CPU: docs/benchmarks.md); an import path
    `pkg.mod:Class` names an engine following `rltrain.engines.base.RolloutEngine`."""

    engine: str = "auto"
    num_workers: int = Field(1, ge=1)
    prompts_per_step: int = Field(32, ge=1)
    n_samples: int = Field(8, ge=1)  # group size G
    max_new_tokens: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_refill_rounds: int = Field(4, ge=0)  # dynamic sampling: extra generation rounds before giving up
    # dynamic sampling: a refill round generates this many times the groups still missing (extra kept groups
    # are dropped), so fewer rounds of small batches are needed when most groups are filtered out
    refill_oversample: float = Field(1.0, ge=1.0)
    # partial rollouts (rltrain/driver/flow/partial.py): 0 = off; c > 0 = each round gives a sample at most c new
    # tokens, unfinished samples resume next step (after the weight sync) from their token ids
    partial_tokens: int = Field(0, ge=0)
    threads: int = Field(0, ge=0)  # torch threads per rollout worker on CPU; 0 = auto (see rltrain/workers)
    # engine precision; auto = model.dtype. bfloat16 with a float32 learner is the usual split
    # (rollouts in bf16, fp32 learner); the gap shows in rollout/logprob_diff.
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    transformers: TransformersEngineConfig = Field(default_factory=TransformersEngineConfig)
    engine_options: dict[str, Any] = Field(default_factory=dict)  # kwargs of an import-path engine

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        from rltrain.engines import check_engine_name

        check_engine_name(name)
        return name

    @field_validator("top_p")
    @classmethod
    def _full_distribution(cls, top_p: float) -> float:
        if top_p < 1:  # the engine's log-probs would come from the truncated distribution, the learner's not
            raise ValueError(f"must be 1.0, got {top_p}: with top_p < 1 the engine's sampling log-probs come from the "
                             "truncated, renormalised distribution while the learners score the full one, so "
                             "every ratio and KL would be biased (learner-side truncation is not implemented)")
        return top_p

    @model_validator(mode="after")
    def _partial_below_the_limit(self) -> "RolloutConfig":
        if self.partial_tokens >= self.max_new_tokens:
            raise ValueError(f"rollout.partial_tokens={self.partial_tokens} must be below rollout.max_new_tokens="
                             f"{self.max_new_tokens} (0 turns partial rollouts off)")
        return self

    @field_validator("engine_options")
    @classmethod
    def _options_only_for_import_paths(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        engine = info.data.get("engine")  # absent when it failed its own check
        if options and engine is not None and ":" not in engine:
            raise ValueError(f"only for an engine given by import path (pkg.mod:Class), and rollout.engine is "
                             f"{engine!r}: set its options under rollout.vllm / rollout.transformers")
        return options


class RewardFunctionConfig(Section):
    """One reward: a built-in name or an import path (`pkg.mod:fn`), its weight and params."""

    name: str = "exact_match"
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)


class RewardConfig(Section):
    functions: list[RewardFunctionConfig] = Field(default_factory=lambda: [RewardFunctionConfig()])
    timeout_s: float = Field(10.0, gt=0)  # per sample; a reward that hangs or raises scores None (dropped)

    @field_validator("functions")
    @classmethod
    def _at_least_one(cls, functions: list[RewardFunctionConfig]) -> list[RewardFunctionConfig]:
        if not functions:
            raise ValueError("needs at least one reward function")
        return functions


class AlgorithmConfig(Section):
    """A preset (`grpo`, `dapo+forking`, ...) plus optional stage overrides, each a dict
    `{name: <registered name or pkg.mod:attr>, **params}`; checked by the `algorithms` package."""

    preset: str = "grpo"
    data_policy: dict[str, Any] = Field(default_factory=dict)
    advantage: dict[str, Any] = Field(default_factory=dict)
    token_selector: dict[str, Any] = Field(default_factory=dict)
    objective: dict[str, Any] = Field(default_factory=dict)
    regularizer: dict[str, Any] = Field(default_factory=dict)
    aggregation: dict[str, Any] = Field(default_factory=dict)
    correction: dict[str, Any] = Field(default_factory=dict)  # e.g. {name: tis, cap: 2.0}

    def spec(self) -> dict[str, Any]:
        """The dict `algorithms.build` takes (empty overrides left out)."""
        out: dict[str, Any] = {"preset": self.preset}
        for stage in STAGES:
            if getattr(self, stage):
                out[stage] = dict(getattr(self, stage))
        return out


STAGES = tuple(k for k in AlgorithmConfig.model_fields if k != "preset")  # its stage sections, in field order


class SyncConfig(Section):
    """Learner -> engines weight sync; how each engine gets the weights is the placement plan's
    (rltrain/workers/planner.py, `launch/grpo.py --plan` shows it). On CPU: `collective` (and `auto`)
    broadcasts flat per-dtype buckets from learner rank 0 over a gloo group of its own with the
    engines, `object_store` puts each bucket in Ray's object store. On GPUs: NCCL broadcast to engines on
    other GPUs, CUDA IPC to an engine on learner rank 0's GPU (`object_store` where asked). Under
    `placement: colocated` the engine adopts the learner's tensors in place."""

    bucket_mb: float = Field(64.0, gt=0)  # weight-sync bucket size (one RPC per bucket per rollout worker)
    method: Literal["auto", "object_store", "collective"] = "auto"
    timeout_s: float = Field(300.0, gt=0)  # collective: rendezvous and each broadcast
    # after every sync, compare a checksum of the weights each engine serves with the learner's: a stale
    # engine stops the run, named (costs one pass over the weights on each side)
    verify: bool = False


class ClusterConfig(Section):
    """The cluster `launch/grpo.py --plan` plans for (null: the machine it runs on). A run plans for the
    Ray cluster it finds."""

    gpus: int | None = Field(None, ge=0)
    gpus_per_node: int | None = Field(None, ge=1)  # null: all GPUs on one node (at most 8 when gpus is set)


class EvalConfig(Section):
    every: int = Field(0, ge=0)  # steps between evaluations (0 = only before and after training)
    n_samples: int = Field(4, ge=1)  # samples per test prompt for pass@k (unbiased estimator)
    temperature: float = 1.0
    max_prompts: int = 200
    correct_threshold: float = 1.0  # a completion counts as correct when its reward >= this
    greedy: bool = False  # also greedy decoding: eval/greedy_pass@1
    # rewards that judge evaluation samples; null = the training rewards (set it to evaluate with a gold
    # verifier while training against a noisy one)
    reward: RewardConfig | None = None


class LoggingConfig(Section):
    wandb: bool = True
    wandb_project: str = "rltrain"
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"  # auto: offline without a key
    wandb_group: str | None = None  # W&B group (a sweep puts its trials in one)
    console: bool = True  # progress on the console: a live bar on a terminal, one line per step elsewhere
    report: bool = True   # write runs/<run>/report.png at the end (rltrain/driver/reporting/report.py)


class ReplayConfig(Section):
    """The `replay` schedule: each update batch mixes fresh groups with groups replayed from the last
    `depth` steps (fraction `fraction` of the batch's groups), with `updates_per_batch` optimizer passes."""

    fraction: float = Field(0.4, ge=0, lt=1)  # replayed share of each update batch's groups (ReMix: 0.4)
    updates_per_batch: int = Field(2, ge=1)   # update-to-data ratio m (ReMix: 2)
    depth: int = Field(2, ge=1)               # keep the groups of the last `depth` steps (ReMix: 2 policies)
    max_staleness: int = Field(4, ge=0)       # evict groups more than this many versions old
    sampling: Literal["recent", "uniform"] = "recent"


class TrainerConfig(Section):
    steps: int = Field(120, ge=0)
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None
    save_every: int = Field(0, ge=0)  # checkpoint every k steps (0 = only at the end)
    keep_checkpoints: int = Field(2, ge=1)
    resume: str | None = None  # a run directory (or "auto" = the run_name's directory when it exists)
    max_wall_s: float = 0.0  # stop cleanly after this many seconds (0 = no limit)
    max_skipped_steps: int = Field(3, ge=0)  # optimizer steps skipped in a row (non-finite gradients) before the run stops
    max_restarts: int = Field(2, ge=0)  # a dead learner rank or reference: restarts of every actor from the last checkpoint
    # a DeepSpeed world (learner or critic ranks) that has not come up by then stops the run naming the ranks
    start_timeout_s: float = Field(1800.0, gt=0)
    num_cpus: int = 0  # local Ray: CPUs to declare (0 = all)
    # sync: generate, then update, one phase at a time. async: generation runs up to max_staleness
    # weight versions ahead (stale batches train against their behaviour log-probs; on CPU the
    # cores are split between rollout and learner actors); one_step_off = async with k = 1.
    # Or an import path pkg.mod:Class (see rltrain/driver/flow/schedules.py).
    schedule: str = "sync"
    max_staleness: int = Field(1, ge=0)  # async: generation runs up to k weight versions ahead (0 = sync)

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, name: str) -> str:
        from rltrain.registry import check_schedule_name

        check_schedule_name(name)
        return name


class EnvConfig(Section):
    """Multi-turn rollouts (rltrain/driver/flow/multiturn.py): `name: null` = single-turn generation. A
    registered environment (`search`) or an import path `pkg.mod:Class` following
    `rltrain.envs.base.Environment`; `options` reach its constructor. A turn ends at EOS, at one of the
    `stop` strings (each one token) or after `turn_tokens`; observations are appended as token ids and
    masked out of the loss; an episode ends when the environment says so, after `max_turns`, or when
    prompt-side tokens reach `rollout.max_new_tokens` (the episode's whole response budget)."""

    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    max_turns: int = Field(4, ge=1)
    turn_tokens: int = Field(16, ge=1)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    step_timeout_s: float = Field(10.0, gt=0)
    workers: int = Field(4, ge=1)  # episodes whose environment steps run at the same time (threads)
    # plain: observations appended as their text; chat: wrapped as a `tool` message of the tokenizer's chat
    # template (rendered once at start), ending with the next assistant turn's generation prompt
    observation_format: Literal["plain", "chat"] = "plain"
    # chat episodes: compare the trained ids with the chat template's render of the whole conversation
    # (rltrain/driver/flow/chat_check.py): warn = the metric multiturn/template_mismatch, stop = end the run
    template_check: Literal["off", "warn", "stop"] = "warn"

    @field_validator("name")
    @classmethod
    def _known_env(cls, name: str | None) -> str | None:
        if name is not None:
            from rltrain.envs import check_env_name

            check_env_name(name)
        return name


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    critic: CriticConfig = Field(default_factory=CriticConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    # separate: every role in its own actor; colocated: the rollout engine lives in learner rank 0's
    # process and adopts its weights in place (one engine: rollout.num_workers must be 1)
    placement: Literal["separate", "colocated"] = "separate"

    @model_validator(mode="after")
    def _colocated_one_engine(self) -> "Config":
        if self.placement == "colocated" and self.rollout.num_workers != 1:
            raise ValueError(f"placement: colocated puts one engine with learner rank 0; rollout.num_workers must be "
                             f"1, got {self.rollout.num_workers}")
        if self.placement == "colocated" and self.rollout.engine == "vllm" and self.learner.num_ranks > 1:
            # vLLM inside a DeepSpeed rank would join DeepSpeed's default process group and wait forever
            raise ValueError("placement: colocated with rollout.engine: vllm needs learner.num_ranks: 1 (vLLM in a "
                             f"process of a {self.learner.num_ranks}-rank DeepSpeed world is not supported yet); use "
                             "placement: separate or the transformers engine")
        return self

    @model_validator(mode="after")
    def _cures_budget(self) -> "Config":
        c, n = self.data.cures, self.rollout.n_samples
        if self.data.sampler == "cures" and c.allocation and c.max_samples and not c.min_samples <= n <= c.max_samples:
            raise ValueError(f"data.cures.min_samples={c.min_samples} <= rollout.n_samples={n} <= data.cures."
                             f"max_samples={c.max_samples} must hold: each batch's budget is prompts x n_samples")
        return self

    @model_validator(mode="after")
    def _multiturn_combinations(self) -> "Config":
        if self.env.name is None:
            return self
        if self.rollout.partial_tokens:
            raise ValueError("env.name is set: multi-turn episodes cannot also be partial rollouts; set "
                             "rollout.partial_tokens: 0")
        return self

    @model_validator(mode="after")
    def _what_the_parts_refuse(self) -> "Config":
        """Cross-field checks the schedule and the engine declare (`check_config`, `resumes_partial`)."""
        from rltrain.registry import schedule_class

        check = getattr(schedule_class(self.trainer.schedule), "check_config", None)
        if check is not None:
            check(self)
        if self.rollout.partial_tokens:
            from rltrain.engines import check_resumable

            check_resumable(self.rollout.engine)
        return self


def check_algorithm(spec: dict[str, Any]) -> None:
    """Validate an algorithm spec with the `algorithms` package; its errors name `algorithm.*` keys."""
    import algorithms

    try:
        algorithms.check(spec)  # presets, stage names, parameters, and the stages' field flow
    except algorithms.ConfigError as e:
        raise ConfigError(str(e)) from None


def load(yaml_path: str | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Defaults <- what the algorithm needs (rltrain/config/algorithm_needs.py) <- YAML <- overrides,
    validated (the algorithm section by the `algorithms` package).

    A missing YAML file raises FileNotFoundError; every other problem raises `ConfigError`.
    """
    from rltrain.config.algorithm_needs import config_layer

    cfg = load_config(Config, yaml_path, overrides, renamed=RENAMED, implied=config_layer)
    check_algorithm(cfg.algorithm.spec())
    return cfg


__all__ = [
    "AlgorithmConfig", "ClusterConfig", "Config", "ConfigError", "CuresConfig", "DataConfig", "EnvConfig", "EvalConfig", "LearnerConfig", "LoRAConfig", "LoggingConfig",
    "CriticConfig", "ModelConfig", "RENAMED", "ReferenceConfig", "ResourcesConfig", "RewardConfig", "RewardFunctionConfig", "RolloutConfig",
    "ReplayConfig", "STAGES", "SyncConfig", "TrainerConfig", "TransformersEngineConfig", "VLLMConfig",
    "load", "to_dict",
]
