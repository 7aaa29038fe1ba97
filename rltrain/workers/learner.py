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

from rltrain.config.schema import LearnerConfig
from rltrain.workers.logprobs import response_logprobs
from rltrain.workers.weight_sync import send_buckets


def _setup_process(rank: int, world_size: int, master_port: int, threads: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master_port), RANK=str(rank),
                      LOCAL_RANK="0" if not torch.cuda.is_available() else str(rank % max(1, torch.cuda.device_count())),
                      WORLD_SIZE=str(world_size))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if threads > 0:
        torch.set_num_threads(threads)


class Learner:
    """DeepSpeed policy engine for one rank. All ranks must be called together for collective
    methods (`train_minibatch`, `sync_weights`, `save`, `load`, `export`)."""

    def __init__(self, model_path: str, cfg: LearnerConfig, rank: int, world_size: int,
                 master_port: int, dtype: str, temperature: float, algo_spec: dict, seed: int,
                 total_steps: int) -> None:
        threads = cfg.threads or max(1, (os.cpu_count() or 2) // world_size)
        _setup_process(rank, world_size, master_port, threads)
        import deepspeed
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        self.rank, self.world_size, self.cfg, self.temperature = rank, world_size, cfg, temperature
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                      weight_decay=cfg.weight_decay)
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

    def set_algorithm(self, algo_spec: dict) -> None:
        """The loss side of the algorithm (stateless here: algorithm state lives on the driver)."""
        import algorithms

        self.algo = algorithms.build(algo_spec)

    # ----- forward passes -------------------------------------------------------------------
    def _forward(self, mb, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = {k: mb.extra[k].to(self.device) for k in ("input_ids", "attention_mask", "resp_start")}
        return response_logprobs(self.engine, x["input_ids"], x["attention_mask"], x["resp_start"],
                                 mb.response_ids.to(self.device), self.temperature, with_entropy)

    @torch.no_grad()
    def compute_logprobs(self, batch, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs (and entropy) of this rank's shard under the current weights, in micro-batches."""
        self.engine.eval()
        logps, ents = [], []
        for start in range(0, len(batch), self.cfg.micro_batch_size):
            mb = batch.index(torch.arange(start, min(start + self.cfg.micro_batch_size, len(batch))))
            logp, ent = self._forward(mb, with_entropy)
            logps.append(logp.cpu())
            ents.append(ent.cpu() if ent is not None else None)
        return torch.cat(logps), (torch.cat(ents) if with_entropy else None)

    # ----- update ---------------------------------------------------------------------------
    def train_minibatch(self, shard, n_micro: int) -> dict[str, Any]:
        """One optimizer step over this rank's shard of a mini-batch, cut into `n_micro`
        micro-batches (every rank passes the same `n_micro`; padding rows carry zero weight).
        Returns the algorithm's raw (sum, weight) metrics so the driver reduces them exactly."""
        from rltrain.workers.sharding import micro_cuts

        self.engine.train()
        self.engine.set_train_batch_size(n_micro * self.world_size)  # gas = n_micro
        cuts = micro_cuts(shard, n_micro, self.algo.group_aligned_microbatches)
        metrics, t0 = [], time.perf_counter()
        for a, b in zip(cuts[:-1], cuts[1:]):
            mb = _to_device(shard.index(torch.arange(a, b)), self.device)
            logp, ent = self._forward(mb, True)
            m_extra = _fused_rollout_metrics(mb, logp, ent) if mb.entropy is None else {}
            if mb.old_logp is None:  # one step on fresh samples: pi_old is this forward's (detached)
                mb.old_logp = logp.detach()
            if self.cfg.tis_cap > 0:
                m_extra.update(_apply_tis(mb, self.cfg.tis_cap))
            loss, m = self.algo.loss(logp, mb, entropy=ent)
            m.update(m_extra)
            # undo DeepSpeed's 1/gas scaling and its mean over ranks: gradients become sums
            self.engine.backward(loss * n_micro * self.world_size)
            if b == cuts[-1]:
                grad_norm = self._grad_norm()
            self.engine.step()
            metrics.append(m)
        if grad_norm is None:
            grad_norm = self.engine.get_global_grad_norm()
        return {"algo": metrics, "actor/grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "actor/lr": float(self.engine.get_lr()[0]), "timing_s/update_rank": time.perf_counter() - t0}

    def _grad_norm(self) -> float | None:
        """Global gradient norm before clipping. ZeRO-0 keeps reduced gradients in `.grad` after the
        boundary backward; ZeRO 1-3 report it from their optimizer after the step."""
        if self.cfg.zero_stage == 0:
            grads = [p.grad.detach().float().norm() ** 2 for p in self.engine.module.parameters() if p.grad is not None]
            return float(torch.stack(grads).sum().sqrt()) if grads else 0.0
        return None

    # ----- weight sync, checkpoints, export -------------------------------------------------
    def sync_weights(self, workers: list, version: int, bucket_bytes: int) -> dict[str, float]:
        """Every rank joins (ZeRO-3 gathers are collective); rank 0 sends the buckets."""
        return send_buckets(self.engine.module, self.cfg.zero_stage == 3, workers if self.rank == 0 else [],
                            version, bucket_bytes)

    def save(self, ckpt_dir: str) -> None:
        self.engine.save_checkpoint(ckpt_dir, tag="learner", client_state={})

    def load(self, ckpt_dir: str) -> None:
        path, _ = self.engine.load_checkpoint(ckpt_dir, tag="learner")
        if path is None:
            raise FileNotFoundError(f"no learner checkpoint under {ckpt_dir}")

    def export(self, out_dir: str, tokenizer_dir: str) -> None:
        """Write the policy as a plain Hugging Face model directory (rank 0 writes)."""
        from rltrain.workers.weight_sync import full_state_dict

        state = full_state_dict(self.engine.module, self.cfg.zero_stage == 3)
        if self.rank == 0:
            from transformers import AutoTokenizer

            tmp = Path(out_dir + ".tmp")
            self.engine.module.save_pretrained(tmp, state_dict=state)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
            _atomic_replace(tmp, Path(out_dir))

    def param_checksum(self) -> float:
        from rltrain.workers.weight_sync import full_state_dict

        state = full_state_dict(self.engine.module, self.cfg.zero_stage == 3)
        return float(sum(v.double().abs().sum() for v in state.values()))


def _real_tokens(mb) -> torch.Tensor:
    """(N,T) 1.0 on the response tokens of real rows (zero-weight padding rows excluded)."""
    return (mb.loss_weights.abs().sum(-1, keepdim=True) > 0).float() * mb.response_mask


def _fused_rollout_metrics(mb, logp: torch.Tensor, entropy: torch.Tensor) -> dict[str, tuple[float, float]]:
    """No separate old-log-prob pass ran, so measure here what it would have: the engine-vs-learner
    log-prob gap and the rollout entropy (padding rows excluded)."""
    real = _real_tokens(mb)
    w = float(real.sum())
    diff = ((logp.detach() - mb.sampling_logp).abs() * real).sum() if mb.sampling_logp is not None else 0.0
    return {"rollout/logprob_diff": (float(diff), w), "rollout/entropy": (float((entropy.detach() * real).sum()), w)}


def _apply_tis(mb, cap: float) -> dict[str, tuple[float, float]]:
    """Multiply the micro-batch's token weights by the TIS weights min(pi_old / pi_engine, cap)."""
    from algorithms import truncated_is_weights

    if mb.sampling_logp is None:
        raise ValueError("learner.tis_cap needs the engine's sampling log-probs, and this batch has none")
    w = truncated_is_weights(mb.old_logp, mb.sampling_logp, cap) * mb.response_mask
    tw = mb.extra.get("token_weights")
    mb.extra["token_weights"] = w if tw is None else tw * w
    real = _real_tokens(mb)
    n = float(real.sum())
    capped = (mb.old_logp - mb.sampling_logp > math.log(cap)).float()
    return {"rollout/tis_weight_mean": (float((w * real).sum()), n),
            "rollout/tis_capped_frac": (float((capped * real).sum()), n)}


def _to_device(mb, device: torch.device):
    if device.type == "cpu":
        return mb
    import dataclasses

    fields = {f.name: getattr(mb, f.name) for f in dataclasses.fields(mb)}
    for k, v in fields.items():
        if isinstance(v, torch.Tensor):
            fields[k] = v.to(device)
    fields["extra"] = {k: v.to(device) for k, v in mb.extra.items()}
    return type(mb)(**fields)


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
