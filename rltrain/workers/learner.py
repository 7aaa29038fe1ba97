"""The policy learner: one Ray actor per rank, each holding a DeepSpeed engine.

Loss normalisation is global: the driver computes `loss_weights` on the whole update batch
(`algorithms` aggregation weights), so the loss of a micro-batch is its exact contribution to the
batch loss. DeepSpeed divides by gradient-accumulation steps and averages gradients over ranks;
`train_minibatch` multiplies those factors back so the summed gradient equals the full-batch
gradient whatever the micro-batch size, accumulation steps or rank count.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from algorithms.stages.base import real_tokens
from rltrain.config.schema import LearnerConfig
from rltrain.workers.logprobs import response_logprobs
from rltrain.workers.weight_sync import send_buckets


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


class Learner:
    """DeepSpeed policy engine for one rank. All ranks must be called together for collective
    methods (`train_minibatch`, `sync_weights`, `save`, `load`, `export`)."""

    def __init__(self, model_path: str, cfg: LearnerConfig, rank: int, world_size: int,
                 master: tuple[str, int], dtype: str, temperature: float, algo_spec: dict, seed: int,
                 gradient_checkpointing: bool = False) -> None:
        threads = cfg.threads or max(1, (os.cpu_count() or 2) // world_size)
        _setup_process(rank, world_size, master, threads)
        import deepspeed

        torch.manual_seed(seed)
        self.rank, self.world_size, self.cfg, self.temperature = rank, world_size, cfg, temperature
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        model = self._build_model(model_path)
        if cfg.compile_layers:
            compile_decoder_layers(model)
        if gradient_checkpointing:
            enable_gradient_checkpointing(model)
        self.lora = cfg.lora.rank > 0
        if self.lora:  # only the adapters train (rltrain/workers/lora.py)
            from rltrain.workers import lora

            if gradient_checkpointing:
                model.enable_input_require_grads()
            model = lora.wrap(model, cfg.lora)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                      betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        warmup = max(0, cfg.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)
        ds_config = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": cfg.zero_stage},
            "bf16": {"enabled": dtype == "bfloat16"},
            "zero_allow_untested_optimizer": True,
            "zero_force_ds_cpu_optimizer": False,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=ds_config)
        self.set_algorithm(algo_spec)

    def _build_model(self, model_path: str) -> torch.nn.Module:
        """The trained module (a causal LM here; the critic and the reward model train other heads)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32,
                                                    attn_implementation=self.cfg.attn_implementation)

    def ping(self) -> bool:
        return True

    def set_algorithm(self, algo_spec: dict) -> None:
        """Build the algorithm's loss part (pure; its state lives on the driver)."""
        import algorithms

        self.loss = algorithms.build_loss(algo_spec)

    # ----- forward passes -------------------------------------------------------------------
    def _forward(self, mb, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        return response_logprobs(self.engine, mb.input_ids.to(self.device), mb.attention_mask.to(self.device),
                                 mb.resp_start.to(self.device), mb.response_ids.to(self.device), self.temperature,
                                 with_entropy, share_prompts=self.cfg.share_prompts)

    @torch.no_grad()
    def compute_logprobs(self, batch, with_entropy: bool) -> dict[str, Any]:
        """Log-probs (and entropy) of this rank's shard under the current weights, in micro-batches;
        with entropy (the old-log-prob pass) also the engine-vs-learner metrics as (sum, weight)."""
        from rltrain.workers.sharding import inference_chunks

        self.engine.eval()
        logp = torch.zeros(batch.response_ids.shape)
        ent = torch.zeros(batch.response_ids.shape) if with_entropy else None
        for idx in inference_chunks(batch, self.cfg.micro_batch_size, self.cfg.max_tokens_per_micro_batch,
                                    self.cfg.share_prompts):
            mb_logp, mb_ent = self._forward(batch.index(idx), with_entropy)
            logp[idx] = mb_logp.cpu()
            if ent is not None:
                ent[idx] = mb_ent.cpu()
        metrics = logprob_metrics(batch.response_mask, logp, ent, batch.sampling_logp) if with_entropy else {}
        return {"logp": logp, "entropy": ent, "metrics": metrics}

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
        skipped = grad_norm is not None and not math.isfinite(grad_norm)
        if grad_norm is None:
            grad_norm = self.engine.get_global_grad_norm()
            if grad_norm is not None and not math.isfinite(float(grad_norm)):
                raise FloatingPointError(
                    f"non-finite gradient norm ({grad_norm}) under ZeRO-{self.cfg.zero_stage}: its optimizer applied the "
                    "step before rltrain could skip it, so the run stops here (ZeRO-0 skips such steps)")
        import resource

        return {"algo": metrics, "faults/skipped": float(skipped),
                "actor/grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "actor/lr": float(self.engine.get_lr()[0]), "timing_s/update_rank": time.perf_counter() - t0,
                "timing_s/optimizer_step": time.perf_counter() - t_step,
                "perf/learner_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    def _micro_loss(self, mb) -> tuple[torch.Tensor, dict]:
        """A micro-batch's share of the policy loss and its (sum, weight) metrics."""
        logp, ent = self._forward(mb, True)
        # no old-log-prob pass ran (no entropy came with the batch): measure here what it would have
        m_extra = {} if mb.entropy is not None else logprob_metrics(real_tokens(mb), logp, ent, mb.sampling_logp)
        if mb.old_logp is None:  # one step on fresh samples: pi_old is this forward's (detached)
            mb.old_logp = logp.detach()
        if mb.prox_logp is None:  # no pass ran: this step's first forward is pi_k
            mb.prox_logp = logp.detach()
        loss, m = self.loss(logp, mb, entropy=ent)
        m.update(m_extra)
        return loss, m

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
        if self.cfg.zero_stage == 0:
            grads = [p.grad.detach().float().norm() ** 2 for p in self.engine.module.parameters() if p.grad is not None]
            return float(torch.stack(grads).sum().sqrt()) if grads else 0.0
        return None

    # ----- weight sync, checkpoints, export -------------------------------------------------
    def _full_params(self):
        """(plain HF name, full CPU tensor) of the policy: merged base + adapter weights under LoRA."""
        from rltrain.workers import lora
        from rltrain.workers.weight_sync import iter_full_params

        if self.lora:
            return lora.merged_params(self.engine.module)
        return iter_full_params(self.engine.module, self.cfg.zero_stage == 3)

    def sync_endpoint(self) -> tuple[str, int]:
        """(this node's address, a free port on it): where rank 0 hosts the weight-sync rendezvous."""
        from rltrain.workers.net import node_endpoint

        return node_endpoint()

    def join_sync_group(self, rendezvous: str, world_size: int, timeout_s: float) -> None:
        """Rank 0 joins the weight-sync process group as its rank 0 (a fresh one replaces the old)."""
        from rltrain.workers.sync_group import SyncGroup

        self.sync_group = SyncGroup(rendezvous, 0, world_size, self.device.type, timeout_s)

    def _sync_params(self, host: bool):
        """What a weight sync sends: on rank 0 each weight where it lives (`host`: a CPU copy, for the object
        store); the other ranks only join ZeRO-3's gathers. LoRA: the merged weights on every rank."""
        from rltrain.workers import lora
        from rltrain.workers.weight_sync import iter_sync_params

        if self.lora:
            return lora.merged_params(self.engine.module)
        return iter_sync_params(self.engine.module, self.cfg.zero_stage == 3, self.rank == 0, host)

    def _engine_params(self, engine_dtype: str | None, host: bool = False):
        """The weight sync's (name, tensor) stream (`_sync_params`) in the engines' precision (a float32
        learner feeding bf16 engines sends half the bytes)."""
        named = self._sync_params(host)
        if engine_dtype is not None:
            dtype = getattr(torch, engine_dtype)
            named = ((n, t.to(dtype) if t.is_floating_point() else t) for n, t in named)
        return named

    def sync_weights(self, workers: list, version: int, bucket_bytes: int,
                     engine_dtype: str | None = None, method: str = "object_store") -> dict[str, float]:
        """Every rank joins (ZeRO-3 gathers are collective); rank 0 sends the buckets through Ray's
        object store, broadcasts them over the weight-sync group (`method: collective`) or hands an
        engine on its own GPU CUDA IPC handles to them (`cuda_ipc`)."""
        from rltrain.workers.sync_group import send_collective

        named = self._engine_params(engine_dtype, host=method == "object_store")
        mine = workers if self.rank == 0 else []
        if method == "collective":
            return send_collective(named, mine, getattr(self, "sync_group", None), version, bucket_bytes)
        if method == "cuda_ipc":
            from rltrain.workers.sync_ipc import IpcBuffers, send_ipc

            if self.rank == 0 and getattr(self, "ipc_buffers", None) is None:
                self.ipc_buffers = IpcBuffers(self.device)
            return send_ipc(named, mine, getattr(self, "ipc_buffers", None), version, bucket_bytes)
        return send_buckets(named, mine, version, bucket_bytes)

    def sent_weights_checksum(self, engine_dtype: str | None = None) -> dict[str, int]:
        """`weights_checksum` of the weights a sync sends (in the engines' precision; a collective under ZeRO-3)."""
        from rltrain.engines.checksum import weights_checksum

        if self.rank != 0:  # only rank 0 sends: the others join ZeRO-3's gathers
            return {"numel": sum(1 for _ in self._engine_params(engine_dtype))}
        return weights_checksum(self._engine_params(engine_dtype), skip=("lm_head.weight",) if self._tied() else ())

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's full weights by name (a collective under ZeRO-3), for checks."""
        return {n: t.detach().clone() for n, t in self._full_params()}

    def param_count(self) -> int:
        """Parameters of the policy (merged size under LoRA)."""
        return sum(t.numel() for n, t in self._full_params() if n != "lm_head.weight" or not self._tied())

    def _tied(self) -> bool:
        module = self.engine.module.get_base_model() if self.lora else self.engine.module
        return bool(getattr(module.config, "tie_word_embeddings", False))

    def save(self, ckpt_dir: str) -> None:
        # under LoRA the frozen base is not saved: the checkpoint holds the adapters and their optimizer state
        self.engine.save_checkpoint(ckpt_dir, tag="learner", client_state={}, exclude_frozen_parameters=self.lora)

    def load(self, ckpt_dir: str) -> None:
        path, _ = self.engine.load_checkpoint(ckpt_dir, tag="learner", load_module_strict=not self.lora)
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
            named = full_state_dict(self.engine.module, self.cfg.zero_stage == 3)
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


def logprob_metrics(mask: torch.Tensor, logp: torch.Tensor, entropy: torch.Tensor | None,
                    sampling_logp: torch.Tensor | None) -> dict[str, tuple[float, float]]:
    """rollout/logprob_diff (mean |learner - engine| log-prob) and rollout/entropy over the tokens of
    `mask`, as (weighted sum, weight) so they reduce exactly over micro-batches and ranks."""
    m = mask.to(logp.dtype)
    w = float(m.sum())
    out: dict[str, tuple[float, float]] = {}
    if sampling_logp is not None:
        out["rollout/logprob_diff"] = (float(((logp.detach() - sampling_logp).abs() * m).sum()), w)
    if entropy is not None:
        out["rollout/entropy"] = (float((entropy.detach() * m).sum()), w)
    return out


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
