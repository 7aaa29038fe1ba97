"""A composed algorithm in two parts, and the check that its stages' field flow is sound.

- `DriverAlgorithm` (built once in the driver process): data policy (`keep`, before refilling), then
  once per step `prepare` on the full update batch (advantages, aggregation weights `loss_weights`,
  token selection `token_weights`, the objective's step hook) and per mini-batch `prepare_minibatch`
  (e.g. BAPO's bounds over the whole mini-batch). It owns all algorithm state (`state_dict`).
- `PolicyLoss` (built once in each learner process): the pure loss of a micro-batch slice, whose values
  sum to the full-batch loss whatever the split:
      loss = sum(objective per-token loss * loss_weights * token_weights * correction)
             + sum(regulariser * loss_weights)
  (the policy term sees the token selection and the correction; the regulariser sees every response
  token). Its stages are frozen: a loss that tries to keep state raises.
- `Algorithm` = both parts in one process (tests, other trainers calling the library directly).

`build` checks, phase by phase, that every field a stage reads is written by the runtime or an earlier
stage (`algorithms.batch` lists who writes what), and fails with `ConfigError` naming the stage and
the field otherwise. Metric actor/entropy: the current forward's entropy when passed to the loss,
else the old pass's `entropy`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch

import algorithms.stages  # noqa: F401  (fills the registry)
from algorithms.batch import (LEARNER_FIELDS, LOGPROB_PASS_FIELDS, MINIBATCH_PASS_FIELDS, ROLLOUT_FIELDS,
                              BatchField, Field, RolloutBatch, StageField, field_named)
from algorithms.presets import resolve_spec
from algorithms.registry import STAGE_KINDS, ConfigError, make_stage
from algorithms.stages.base import Max, Metrics, StepPlan, wmean

LOSS_KINDS = ("objective", "regularizer", "correction")


def reduce_metrics(metric_dicts: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Exact reduction of (weighted_sum, weight) metrics over micro-batches/ranks: sum(ws)/sum(w).
    Plain numbers count as (value, 1); `Max` values reduce by max. Keys whose total weight is 0 are left out."""
    acc: dict[str, list[float]] = {}
    maxima: dict[str, float] = {}
    for d in metric_dicts:
        for k, v in d.items():
            if isinstance(v, Max):
                maxima[k] = max(maxima.get(k, float("-inf")), float(v))
                continue
            s, w = (float(v[0]), float(v[1])) if isinstance(v, (tuple, list)) else (float(v), 1.0)
            a = acc.setdefault(k, [0.0, 0.0])
            a[0] += s
            a[1] += w
    return {**{k: s / w for k, (s, w) in acc.items() if w != 0}, **maxima}


def _snapshot(batch: RolloutBatch) -> dict[str, Any]:
    """Every core and stage field's object by name (held, so a replaced object's id cannot be reused)."""
    return {**{f.value: batch.get(f) for f in BatchField}, **batch.stage_fields}


@contextmanager
def _writes_declared(stage: Any, kind: str, batch: RolloutBatch) -> Iterator[dict[str, Any]]:
    """The stage output contract, checked where a stage runs: the core and stage fields it sets are among its
    declared `writes` (a field it sets without declaring would reach later stages unchecked by `build`). A
    field is set when its object is replaced; writing into an existing tensor in place is not seen. Yields
    the fields as they were, to check a batch the stage returns against them too."""
    before = _snapshot(batch)
    yield before
    _check_writes(stage, kind, before, batch)


def _check_writes(stage: Any, kind: str, before: dict[str, Any], batch: RolloutBatch) -> None:
    declared = {f.value for f in _fields(stage, "writes", kind)}
    after = _snapshot(batch)
    undeclared = sorted(name for name in before.keys() | after.keys()  # a deleted stage field counts too
                        if _replaced(before.get(name), after.get(name)) and name not in declared)
    if undeclared:
        raise RuntimeError(f"{kind} stage {stage.name!r} set batch fields it does not declare in `writes`: "
                           f"{', '.join(undeclared)}")


def _replaced(old: Any, new: Any) -> bool:
    """A tensor field is replaced when its object is; a list (prompt keys; a batch copy owns its own) when its
    content differs."""
    return old != new if isinstance(old, list) or isinstance(new, list) else old is not new


def _fields(stage: Any, attr: str, kind: str) -> frozenset[Field]:
    """A stage's declared fields as `BatchField` / `StageField` members (a plain name is looked up); a name
    that is not a declared field is a ConfigError."""
    out = set()
    for f in getattr(stage, attr, frozenset()):
        try:
            out.add(f if isinstance(f, (BatchField, StageField)) else field_named(f))
        except ValueError as e:
            raise ConfigError(f"algorithm.{kind}", f"stage {stage.name!r} declares {attr} {f!r}: {e}") from None
    return frozenset(out)


def check_field_flow(stages: dict[str, Any]) -> None:
    """Every read is written by the runtime or an earlier stage (phase order of the module docstring), and
    the critic the runtime starts for a stage that reads `values` gets its targets: some stage writes `returns`."""
    available = set(ROLLOUT_FIELDS)
    phases = [("data_policy", "reads", set()), ("advantage", "reads", LOGPROB_PASS_FIELDS),
              ("aggregation", "reads", set()), ("token_selector", "reads", set()),
              ("objective", "prepare_reads", MINIBATCH_PASS_FIELDS), ("objective", "reads", LEARNER_FIELDS),
              ("regularizer", "reads", set()), ("correction", "reads", set())]
    for kind, attr, arriving in phases:
        available |= arriving
        stage = stages[kind]
        missing = sorted(f.value for f in _fields(stage, attr, kind) - available)
        if missing:
            raise ConfigError(f"algorithm.{kind}", f"stage {stage.name!r} reads {', '.join(missing)}, which neither "
                                                   "the runtime nor an earlier stage writes at that point")
        available |= _fields(stage, "writes", kind)
    value_readers = [s.name for k, s in stages.items() for a in ("reads", "prepare_reads")
                     if BatchField.VALUES in _fields(s, a, k)]
    if value_readers and BatchField.RETURNS not in available:
        raise ConfigError("algorithm.advantage", f"stage {value_readers[0]!r} reads values, so the runtime starts a "
                                                 "critic, which trains on `returns`; no stage writes them (use an "
                                                 "advantage that does, e.g. gae)")


def check_combination(stages: dict[str, Any]) -> None:
    """Stages that would each correct for the behaviour policy (one by its ratio, one by weights)."""
    objective, correction = stages["objective"], stages["correction"]
    if getattr(correction, "old_logp_from_learner", False) and getattr(objective, "behaviour_ratio", False):
        raise ConfigError("algorithm.correction", f"correction {correction.name!r} weights tokens by pi_old / "
                                                  f"pi_behaviour, and objective {objective.name!r} already takes its "
                                                  "ratio against the behaviour log-probs on off-policy rows: use one "
                                                  "of them (objective behaviour=old, or correction none)")


class DriverAlgorithm:
    """The driver part: data policy, advantages, weights, selection, objective hooks, and all state."""

    def __init__(self, stages: dict[str, Any], spec: dict[str, dict[str, Any]]) -> None:
        self.stages, self.spec = stages, spec
        self.data_policy, self.advantage = stages["data_policy"], stages["advantage"]
        self.token_selector, self.objective = stages["token_selector"], stages["objective"]
        self.aggregation = stages["aggregation"]
        self.reads: frozenset[Field] = frozenset().union(
            *(_fields(s, a, k) for k, s in stages.items() for a in ("reads", "prepare_reads")))
        driver_stages = [self.data_policy, self.advantage, self.aggregation, self.token_selector]
        self.driver_reads: frozenset[Field] = frozenset().union(
            *(_fields(s, "reads", "") for s in driver_stages), _fields(self.objective, "prepare_reads", ""))
        self.group_aligned_microbatches: bool = any(getattr(s, "group_aligned", False) for s in stages.values())
        # what a replayed row must bring back beside its advantages: the advantage stage's other outputs
        # (PACS labels, GTPO's seq_advantages, GAE returns), stored when the row was generated
        # pi_old is the learner's log-prob on every row, off-policy ones too (a correction stage carries the
        # behaviour policy): the runtime's log-prob pass replaces the behaviour log-probs of stale rows
        self.old_logp_from_learner: bool = any(getattr(s, "old_logp_from_learner", False) for s in stages.values())
        self.replay_fields: tuple[Field, ...] = tuple(sorted(
            _fields(self.advantage, "writes", "advantage") - {BatchField.ADVANTAGES}, key=lambda f: f.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec})"

    def needs(self, f: Field) -> bool:
        """Whether any stage reads `f` (the runtime computes on-demand fields only when needed)."""
        return f in self.reads

    def plan(self, step: int) -> StepPlan:
        """The stages' requests for this step merged: off-policy only if no stage objects; the latest
        reference reset asked for."""
        plans = [p for s in self.stages.values() if hasattr(s, "plan") and (p := s.plan(step)) is not None]
        resets = [p.reference_from_step for p in plans if p.reference_from_step is not None]
        return StepPlan(off_policy=all(p.off_policy for p in plans), reference_from_step=max(resets, default=None))

    def keep(self, batch: RolloutBatch) -> torch.Tensor:
        return self.data_policy.keep(batch).to(torch.bool)

    def prepare(self, batch: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        b = batch.copy()
        metrics = self._advantages(b)
        with _writes_declared(self.aggregation, "aggregation", b):
            w_agg = self.aggregation.weights(b)
        with _writes_declared(self.token_selector, "token_selector", b):
            sel, renormalise, sel_metrics = self.token_selector.select(b)
        metrics.update(sel_metrics)
        if sel is not None:
            if renormalise:
                w_sel = self.aggregation.weights(b, b.response_mask * sel)
                sel = torch.where(w_agg > 0, w_sel / w_agg.clamp(min=1e-30), torch.zeros_like(w_sel))
            b.token_weights = sel.to(torch.float32)
        b.loss_weights = w_agg.to(torch.float32)
        with _writes_declared(self.objective, "objective", b):
            metrics.update(self.objective.prepare(b))
        return b, metrics

    def _advantages(self, b: RolloutBatch) -> dict[str, float]:
        """Advantages of the fresh rows; replayed rows keep the advantages and the estimator's other
        outputs (`replay_fields`) stored at generation time, which the batch must carry for them."""
        if b.replayed is None or not bool(b.replayed.any()):
            with _writes_declared(self.advantage, "advantage", b):
                adv, metrics = self.advantage.compute(b)
            b.advantages = adv.to(torch.float32)
            return metrics
        fresh_rows = b.fresh_rows()
        fresh = b.index(fresh_rows)
        with _writes_declared(self.advantage, "advantage", fresh):
            adv, metrics = self.advantage.compute(fresh)
        fresh.advantages = adv.to(torch.float32)
        for f in _fields(self.advantage, "writes", "advantage"):
            part, stored = fresh.get(f), b.get(f)
            if part is None:
                continue
            if stored is None:
                raise ValueError(f"replayed rows carry no stored {f.value!r}, an output of the advantage stage "
                                 f"{self.advantage.name!r} that later stages read; the replay buffer keeps "
                                 "`replay_fields` for them")
            full = stored.clone().to(part.dtype)
            full[fresh_rows] = part
            b.put(f, full)
        return metrics

    def prepare_minibatch(self, mb: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        with _writes_declared(self.objective, "objective", mb) as before:
            out, metrics = self.objective.prepare_minibatch(mb)  # may return a copy with its writes
        _check_writes(self.objective, "objective", before, out)
        return out, metrics

    def state_dict(self) -> dict[str, Any]:
        return {kind: stage.state_dict() for kind, stage in self.stages.items()
                if hasattr(stage, "state_dict") and stage.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for kind, state in d.items():
            if kind in self.stages:
                self.stages[kind].load_state_dict(state)


class PolicyLoss:
    """The learner part: a pure function of (logp, micro-batch, entropy); its stages are frozen."""

    def __init__(self, stages: dict[str, Any]) -> None:
        self.objective, self.regularizer, self.correction = (stages[k] for k in LOSS_KINDS)
        for s in (self.objective, self.regularizer, self.correction):
            if hasattr(s, "freeze"):
                s.freeze()
        self.group_aligned_microbatches: bool = any(getattr(s, "group_aligned", False) for s in stages.values())

    def __call__(self, logp: torch.Tensor, mb: RolloutBatch,
                 entropy: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
        if mb.loss_weights is None or mb.advantages is None:
            raise RuntimeError("the loss needs a batch that went through the driver part's prepare "
                               "(advantages, loss_weights)")
        mb = mb.to(logp.device)
        w_agg = mb.loss_weights.to(logp.dtype)
        w = w_agg * mb.token_weights.to(logp.dtype) if mb.token_weights is not None else w_agg
        corr, metrics = self.correction.weights(mb)
        if corr is not None:
            w = w * corr.to(logp.dtype)
        loss, obj_metrics = self.objective.loss(logp, mb, w)
        metrics.update(obj_metrics)
        reg, reg_metrics = self.regularizer.per_token(logp, mb, entropy)
        if reg is not None:
            loss = loss + (reg * w_agg).sum()
            metrics.update(reg_metrics)
        ent = entropy if entropy is not None else mb.entropy  # old-pass entropy when no current one is given
        if ent is not None:
            metrics.update(wmean("actor/entropy", ent, w_agg))
        return loss, metrics


class Algorithm(DriverAlgorithm):
    """Both parts in one process: the driver part's methods plus `loss` (a `PolicyLoss` built from the
    same spec with its own, frozen, stage instances)."""

    def __init__(self, stages: dict[str, Any], spec: dict[str, dict[str, Any]]) -> None:
        super().__init__(stages, spec)
        self.loss = build_loss(spec)


def _stages(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    resolved = resolve_spec(spec)
    stages = {kind: make_stage(kind, resolved[kind], f"algorithm.{kind}") for kind in STAGE_KINDS}
    check_field_flow(stages)
    check_combination(stages)
    return stages, resolved


def build_driver(spec: dict[str, Any]) -> DriverAlgorithm:
    """The driver part from a spec {"preset": "dapo+forking", <stage>: {...}}; ConfigError on a bad spec."""
    return DriverAlgorithm(*_stages(spec))


def build_loss(spec: dict[str, Any]) -> PolicyLoss:
    """The learner part (pure loss) from the same spec."""
    return PolicyLoss(_stages(spec)[0])


def build(spec: dict[str, Any]) -> Algorithm:
    """Both parts in one object (single-process use)."""
    return Algorithm(*_stages(spec))


def check(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate a spec (presets, stage names, parameters, field flow); returns the resolved stage specs."""
    return _stages(spec)[1]
