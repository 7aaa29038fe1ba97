"""The policy learner: the DeepSpeed role (rltrain/workers/deepspeed_role.py) of the policy in RL, one
Ray actor per rank. What is its own: the algorithm's pure loss part (built from the run's algorithm
spec), the log-prob passes at the sampling temperature, and the weight sync to the rollout engines.

Loss normalisation is global (see deepspeed_role): the driver computes `loss_weights` on the whole
update batch (`algorithms` aggregation weights), so a micro-batch's loss is its exact contribution.
"""

from __future__ import annotations

from typing import Any

import torch

from algorithms.stages.base import real_tokens
from rltrain.workers.deepspeed_role import DeepSpeedRole, RankSpec
from rltrain.workers.logprobs import response_logprobs
from rltrain.workers.weight_sync import send_buckets

__all__ = ["Learner", "logprob_metrics"]


class Learner(DeepSpeedRole):
    """One rank of the policy. `temperature` is the rollout's (log-probs are of the distribution sampled
    from); `algorithm` the run's algorithm spec (`algorithm` section, resolved)."""

    def __init__(self, spec: RankSpec, *, temperature: float, algorithm: dict) -> None:
        super().__init__(spec)
        self.temperature = temperature
        self.set_algorithm(algorithm)

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

    # ----- weight sync -----------------------------------------------------------------------
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
        return iter_sync_params(self.engine.module, self.zero_stage == 3, self.rank == 0, host)

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
