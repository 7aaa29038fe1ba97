"""The DeepSpeed role: one Ray actor per rank holding a DeepSpeed engine, which the policy learner
(rltrain/workers/learner.py), the critic, the reward-model learner and the SFT and DPO learners each
extend with only what is theirs: the module they train (`_build_model`), a micro-batch's loss
(`_micro_loss`) and their own passes.

What every role shares: the process set-up of its rank, the optimizer and DeepSpeed engine (ZeRO
stage, bf16, gradient clipping, LoRA adapters, gradient checkpointing, compiled layers from the role's
config), the optimizer step over a mini-batch's micro-batches (`train_minibatch`), checkpoints and the
Hugging Face export. Loss normalisation is global: the driver gives every row its weight in the whole
mini-batch, so a micro-batch's loss is its exact share; `train_minibatch` multiplies back DeepSpeed's
division by accumulation steps and its mean over ranks, so the summed gradient equals the full-batch
gradient whatever the micro-batch size, accumulation steps or rank count.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["DeepSpeedRole", "RankSpec", "compile_decoder_layers", "deepspeed_precision", "enable_gradient_checkpointing",
           "stop_if_skipped"]


@dataclass(frozen=True)
class RankSpec:
    """One rank of a DeepSpeed role: the model it starts from, its role's config section (lr, betas,
    weight_decay, warmup_steps, grad_clip, zero_stage, threads, lora, compile_layers, attn_implementation,
    micro-batch sizes), where it sits in its world and where that world meets."""

    model_path: str
    cfg: Any
    rank: int
    world_size: int
    master: tuple[str, int]
    dtype: str = "float32"
    seed: int = 0
    gradient_checkpointing: bool = False


def _setup_process(rank: int, world_size: int, master: tuple[str, int], threads: int) -> None:
    """The process's distributed environment, and its device set before anything reads it: Ray shows
    each learner rank exactly the GPU its placement bundle holds, so that GPU is cuda:0 and LOCAL_RANK 0
    on every rank (the plan never puts two ranks on one GPU)."""
    os.environ.update(MASTER_ADDR=master[0], MASTER_PORT=str(master[1]), RANK=str(rank), LOCAL_RANK="0",
                      WORLD_SIZE=str(world_size))
    if torch.cuda.is_available():
        torch.cuda.set_device(0)
    else:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if threads > 0:
        torch.set_num_threads(threads)



def deepspeed_precision(zero_stage: int, dtype: str) -> tuple[int, dict[str, Any]]:
    """The ZeRO stage DeepSpeed runs and its precision sections, for weights of `dtype`. bf16 weights
    accumulate their gradients in fp32 over micro-batches and ranks (`data_types.grad_accum_dtype`; a bf16
    running sum drops the low bits of every later micro-batch's gradient). DeepSpeed 0.19 does that from
    ZeRO-1 on (at stage 1 with its BF16 optimizer: fp32 master weights and gradient buffers) and refuses it
    at stage 0, so a stage-0 request runs as stage 1: for one rank that partitions nothing, for several
    it partitions the optimizer state."""
    if dtype != "bfloat16":
        return zero_stage, {"bf16": {"enabled": False}}
    return max(zero_stage, 1), {"bf16": {"enabled": True}, "data_types": {"grad_accum_dtype": "fp32"}}


def stop_if_skipped(outs: list[dict[str, Any]], what: str, step: int) -> None:
    """A supervised loop (SFT, DPO, reward model) stops at a step whose optimizer update was skipped for a
    non-finite gradient (`train_minibatch`'s `faults/skipped` on any rank): on fixed data that means a
    broken row or a learning rate too high, not noise to ride out."""
    if any(o["faults/skipped"] for o in outs):
        raise FloatingPointError(f"{what} step {step}: non-finite gradient (norm {outs[0]['actor/grad_norm']}); the "
                                 "optimizer step was skipped and the run stops here (check the data and the lr)")


class DeepSpeedRole:
    """One rank's DeepSpeed engine. All ranks of a role must be called together for collective methods
    (`train_minibatch`, `save`, `load`, `export`, and whatever a role adds that gathers ZeRO-3 weights)."""

    def __init__(self, spec: RankSpec) -> None:
        cfg, rank, world_size = spec.cfg, spec.rank, spec.world_size
        threads = cfg.threads or max(1, (os.cpu_count() or 2) // world_size)
        _setup_process(rank, world_size, spec.master, threads)
        import deepspeed

        torch.manual_seed(spec.seed)
        self.rank, self.world_size, self.cfg = rank, world_size, cfg
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        model = self._build_model(spec.model_path)
        if cfg.compile_layers:
            compile_decoder_layers(model)
        if spec.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        self.lora = cfg.lora.rank > 0
        if self.lora:  # only the adapters train (rltrain/workers/lora.py)
            from rltrain.workers import lora

            if spec.gradient_checkpointing:
                model.enable_input_require_grads()
            model = lora.wrap(model, cfg.lora)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                      betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        warmup = max(0, cfg.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)
        self.zero_stage, precision = deepspeed_precision(cfg.zero_stage, spec.dtype)
        if self.zero_stage != cfg.zero_stage and rank == 0:
            print(f"[rltrain] {type(self).__name__}: bf16 weights accumulate gradients in fp32, which DeepSpeed does "
                  f"from ZeRO-1 on: zero_stage {cfg.zero_stage} runs as {self.zero_stage}", flush=True)
        ds_config = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": self.zero_stage},
            **precision,
            "zero_allow_untested_optimizer": True,
            "zero_force_ds_cpu_optimizer": False,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=ds_config)

    def _build_model(self, model_path: str) -> torch.nn.Module:
        """The trained module: a causal LM (the critic and the reward model override it with their heads)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32,
                                                    attn_implementation=self.cfg.attn_implementation)

    def ping(self) -> bool:
        return True

    def _micro_loss(self, mb) -> tuple[torch.Tensor, dict]:
        """A micro-batch's share of the mini-batch loss and its (sum, weight) metrics: the role's own."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss")

    # ----- update ---------------------------------------------------------------------------
    def train_minibatch(self, shard, cuts: list[int]) -> dict[str, Any]:
        """One optimizer step over this rank's shard of a mini-batch, in the micro-batches
        `shard[cuts[i]:cuts[i+1]]` (every rank gets the same number; padding rows carry zero weight;
        rltrain/workers/sharding.rank_micro_batches). Returns the algorithm's raw (sum, weight)
        metrics so the driver reduces them exactly."""
        n_micro = len(cuts) - 1
        self.engine.train()
        self.engine.set_train_batch_size(n_micro * self.world_size)  # gas = n_micro
        metrics, t0, grad_norm = [], time.perf_counter(), None
        for a, b in zip(cuts[:-1], cuts[1:]):
            mb = shard.index(torch.arange(a, b)).to(self.device)
            loss, m = self._micro_loss(mb)
            # undo DeepSpeed's 1/gas scaling and its mean over ranks: gradients become sums
            self.engine.backward(loss * n_micro * self.world_size)
            skip = False
            if b == cuts[-1]:
                grad_norm = self._grad_norm()
                t_step = time.perf_counter()
                skip = grad_norm is not None and not math.isfinite(grad_norm)
            if skip:  # ZeRO-0: every rank holds the same reduced gradients, so every rank skips together
                self._step_without_update()
            else:
                self.engine.step()  # the optimizer steps at the last micro-batch (accumulation boundary)
            metrics.append(m)
        if grad_norm is None:  # ZeRO 1-3: the optimizer computed the norm in its step
            grad_norm = self.engine.get_global_grad_norm()
            dropped = getattr(self.engine.optimizer, "overflow", False)  # the optimizer skipped the step itself
            if dropped and self.engine.lr_scheduler is not None:
                self.engine.lr_scheduler.step()  # as at ZeRO-0 (`_step_without_update`): the schedule moves on
            if grad_norm is not None and not math.isfinite(float(grad_norm)) and not dropped:
                raise FloatingPointError(
                    f"non-finite gradient norm ({grad_norm}) under ZeRO-{self.zero_stage}: its optimizer applied the "
                    "step before rltrain could skip it, so the run stops here (ZeRO-0, and DeepSpeed's optimizers "
                    "that detect it, skip such steps)")
        skipped = grad_norm is not None and not math.isfinite(float(grad_norm))
        import resource

        return {"algo": metrics, "faults/skipped": float(skipped),
                "actor/grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "actor/lr": float(self.engine.get_lr()[0]), "timing_s/update_rank": time.perf_counter() - t0,
                "timing_s/optimizer_step": time.perf_counter() - t_step,
                "perf/learner_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    def _step_without_update(self) -> None:
        """DeepSpeed's step with the optimizer's update left out: its counters and the lr schedule move
        on, the weights and the optimizer state stay as they were, the gradients are dropped."""
        optimizer = self.engine.optimizer
        update = optimizer.step
        optimizer.step = lambda *args, **kwargs: None
        try:
            self.engine.step()
        finally:
            optimizer.step = update
        optimizer.zero_grad(set_to_none=True)

    def _grad_norm(self) -> float | None:
        """Global gradient norm before clipping. ZeRO-0 keeps reduced gradients in `.grad` after the
        boundary backward; ZeRO 1-3 report it from their optimizer after the step."""
        if self.zero_stage == 0:
            grads = [p.grad.detach().float().norm() ** 2 for p in self.engine.module.parameters() if p.grad is not None]
            return float(torch.stack(grads).sum().sqrt()) if grads else 0.0
        return None

    # ----- weights, checkpoints, export ------------------------------------------------------
    def _full_params(self):
        """(plain HF name, full CPU tensor) of the policy: merged base + adapter weights under LoRA."""
        from rltrain.workers import lora
        from rltrain.workers.weight_sync import iter_full_params

        if self.lora:
            return lora.merged_params(self.engine.module)
        return iter_full_params(self.engine.module, self.zero_stage == 3)

    def _tied(self) -> bool:
        module = self.engine.module.get_base_model() if self.lora else self.engine.module
        return bool(getattr(module.config, "tie_word_embeddings", False))

    def save(self, ckpt_dir: str) -> None:
        # under LoRA the frozen base is not saved: the checkpoint holds the adapters and their optimizer state
        self.engine.save_checkpoint(ckpt_dir, tag="learner", client_state={}, exclude_frozen_parameters=self.lora)

    def load(self, ckpt_dir: str) -> None:
        module_only = self.zero_stage > 0 and not any(Path(ckpt_dir, "learner").glob("*optim_states.pt"))
        if module_only and self.rank == 0:  # written at ZeRO-0: bf16 at stage 0 before it ran as stage 1
            print(f"[rltrain] {ckpt_dir}: a ZeRO-0 checkpoint loaded by a ZeRO-{self.zero_stage} engine: the weights "
                  "are restored, the optimizer state starts afresh (the resumed run is not the uninterrupted one)",
                  flush=True)
        path, _ = self.engine.load_checkpoint(ckpt_dir, tag="learner", load_module_strict=not self.lora,
                                              load_module_only=module_only)
        if path is None:
            raise FileNotFoundError(f"no learner checkpoint under {ckpt_dir}")

    def export(self, out_dir: str, tokenizer_dir: str) -> None:
        """Write the policy as a plain Hugging Face model directory (rank 0 writes)."""
        state = dict(self._full_params())
        if self.rank == 0:
            from transformers import AutoTokenizer

            tmp = Path(out_dir + ".tmp")
            module = self.engine.module.get_base_model() if self.lora else self.engine.module
            module.save_pretrained(tmp, state_dict=state)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
            _atomic_replace(tmp, Path(out_dir))

    def param_checksum(self, part: str = "policy") -> float:
        """Sum of |w| over the policy's (merged) weights; under LoRA also "base" (frozen) or "adapter"."""
        from rltrain.workers.weight_sync import full_state_dict

        if part == "policy":
            values = [v for _, v in self._full_params()]
        else:
            named = full_state_dict(self.engine.module, self.zero_stage == 3)
            values = [v for n, v in named.items() if ("lora_" in n) == (part == "adapter")]
        return float(sum(v.double().abs().sum() for v in values))



def compile_decoder_layers(model: torch.nn.Module) -> None:
    """`torch.compile` every decoder layer in place (regional compilation: the layers share one graph,
    so compile time does not grow with depth); dynamic shapes, as micro-batch widths vary."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ValueError("learner.compile_layers: the model's decoder has no `layers` list to compile")
    for layer in layers:
        layer.compile(dynamic=True)


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """HF gradient checkpointing (`model.gradient_checkpointing`): each decoder layer's activations are
    recomputed in the backward instead of kept from the forward: less memory, ~1/3 more compute."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def _atomic_replace(tmp: Path, final: Path) -> None:
    import shutil

    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
