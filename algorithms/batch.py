"""The typed update batch every stage reads and writes (DESIGN.md "The common update step").

N sequences x T response tokens, right-padded. Every field is declared here, with its shape and who
fills it; a stage names the fields it reads and writes with `BatchField` members, and
`algorithms.build` checks that each read is written by the runtime or an earlier stage.

Who writes what:
- the runtime, when it packs the rollout: `ROLLOUT_FIELDS` (token ids, masks, model inputs, rewards,
  groups, prompt keys, sampling log-probs, policy versions, `replayed`: which rows came from the replay
  buffer, with their advantages and behaviour log-probs as stored at generation time) and the scalars `pad_id`, `step` and
  `max_response_len` (the generation budget: DAPO's L_max, Dr.GRPO's constant normaliser);
- the runtime's log-prob passes, on demand (when some stage reads them): `old_logp`, `entropy` and
  `prox_logp` (learners, before the driver part runs), `ref_logp` (reference actor), `values` (critic
  actor: V(s_t) before each response token, under the critic's weights before this step's update),
  `cur_logp` (learners, on each whole mini-batch before its update);
- stages, for the runtime: `advantages`, `loss_weights`, `token_weights` (the learner's loss) and
  `returns` (the critic's regression targets; the runtime starts a critic when a stage reads `values`).

A field one stage writes for another stage only (PACS's labels, GTPO's per-completion advantages,
BAPO's bounds, ReMix's behaviour rows) is not a core field: its writer's module declares it as a
`StageField` and the batch carries it in `stage_fields`, read and written with `get` / `put`. The
runtime never names one; it slices, pads, concatenates, moves and replays them like core fields.

`index` and `cat` slice / concatenate every per-row field, which is how the trainer cuts
mini-batches, rank shards and micro-batches.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

import torch


class BatchField(str, enum.Enum):
    """Names of the batch's fields, for stages to declare what they read and write."""

    RESPONSE_IDS = "response_ids"
    RESPONSE_MASK = "response_mask"
    INPUT_IDS = "input_ids"
    ATTENTION_MASK = "attention_mask"
    RESP_START = "resp_start"
    REWARDS = "rewards"
    GROUP_IDS = "group_ids"
    PROMPT_KEYS = "prompt_keys"
    SAMPLING_LOGP = "sampling_logp"
    VERSIONS = "versions"
    TOKEN_REWARDS = "token_rewards"
    TURN_IDS = "turn_ids"
    OLD_LOGP = "old_logp"
    ENTROPY = "entropy"
    REF_LOGP = "ref_logp"
    CUR_LOGP = "cur_logp"
    PROX_LOGP = "prox_logp"
    ADVANTAGES = "advantages"
    LOSS_WEIGHTS = "loss_weights"
    TOKEN_WEIGHTS = "token_weights"
    REPLAYED = "replayed"
    TEACHER_IDS = "teacher_ids"
    TEACHER_MASK = "teacher_mask"
    GT_PROBS = "gt_probs"
    VALUES = "values"
    RETURNS = "returns"


@dataclass(frozen=True)
class StageField:
    """A field one stage writes for later stages and nothing else reads: declared once, in its writer's
    module (`value` is its name, as for `BatchField`), listed in stages' `reads` / `writes` like a core
    field, carried in `RolloutBatch.stage_fields`."""

    value: str
    per_token: bool  # (N,T) response-wide when True, else one value per row (N,)
    doc: str = ""

    def __post_init__(self) -> None:
        if self.value in {f.value for f in BatchField} or self.value in _SCALARS:
            raise ValueError(f"stage field {self.value!r} would shadow a core batch field")
        known = STAGE_FIELDS.setdefault(self.value, self)
        if known != self:
            raise ValueError(f"stage field {self.value!r} is declared twice, differently: {known} and {self}")


#: every declared stage field by name (filled as the stage modules are imported)
STAGE_FIELDS: dict[str, StageField] = {}
Field = BatchField | StageField


def field_named(name: str) -> Field:
    """The core or stage field called `name`; ValueError naming the known ones otherwise."""
    if name in STAGE_FIELDS:
        return STAGE_FIELDS[name]
    try:
        return BatchField(name)
    except ValueError:
        known = sorted([f.value for f in BatchField] + list(STAGE_FIELDS))
        raise ValueError(f"{name!r} is not a batch field; known: {', '.join(known)}") from None


F = BatchField
ROLLOUT_FIELDS = frozenset({F.RESPONSE_IDS, F.RESPONSE_MASK, F.INPUT_IDS, F.ATTENTION_MASK, F.RESP_START,
                            F.REWARDS, F.GROUP_IDS, F.PROMPT_KEYS, F.SAMPLING_LOGP, F.VERSIONS, F.REPLAYED,
                            F.TURN_IDS, F.TOKEN_REWARDS})
LOGPROB_PASS_FIELDS = frozenset({F.OLD_LOGP, F.ENTROPY, F.REF_LOGP, F.PROX_LOGP, F.GT_PROBS,
                                 F.VALUES})  # before the driver part
MINIBATCH_PASS_FIELDS = frozenset({F.CUR_LOGP})                                    # per mini-batch
LEARNER_FIELDS = frozenset({F.OLD_LOGP, F.PROX_LOGP})  # from the learner's own forward when no pass ran


def _as_index(idx, n: int) -> torch.Tensor:
    if isinstance(idx, slice):
        return torch.arange(n)[idx]
    t = torch.as_tensor(idx)
    if t.dtype == torch.bool:
        if t.numel() != n:
            raise ValueError(f"bool index has {t.numel()} entries for a batch of {n}")
        return t.nonzero(as_tuple=True)[0]
    return t.to(torch.long).reshape(-1)


@dataclass(slots=True)
class RolloutBatch:
    """The full update batch (or a slice of it). (N,T) = rows x response tokens, (N,L) = model rows.
    Slotted: setting a name that is not a declared field raises (stage fields go through `put`)."""

    response_ids: torch.Tensor                   # (N,T) long
    response_mask: torch.Tensor                  # (N,T) float 0/1, 0 on padding and tool/observation tokens
    rewards: torch.Tensor                        # (N,) outcome reward
    group_ids: torch.Tensor                      # (N,) long, same id = same prompt in this batch
    prompt_keys: list[str]                       # (N) stable across steps
    input_ids: torch.Tensor | None = None        # (N,L) prompt + response + right padding
    attention_mask: torch.Tensor | None = None   # (N,L)
    resp_start: torch.Tensor | None = None       # (N,) where each row's response starts in input_ids
    sampling_logp: torch.Tensor | None = None    # (N,T) the engine's log-probs of the sampled tokens
    versions: torch.Tensor | None = None         # (N,) weight version that generated each row
    token_rewards: torch.Tensor | None = None    # (N,T) per-turn environment rewards at each turn's last token
    turn_ids: torch.Tensor | None = None         # (N,T) turn index per token (a turn's observation included),
                                                 #       -1 on padding; single-turn: 0 on every response token
    old_logp: torch.Tensor | None = None         # (N,T) pi_old (learner pass, or behaviour log-probs off-policy)
    entropy: torch.Tensor | None = None          # (N,T) pi_old's entropy (learner pass)
    ref_logp: torch.Tensor | None = None         # (N,T) reference policy (reference actor)
    cur_logp: torch.Tensor | None = None         # (N,T) current policy before this mini-batch's update
    prox_logp: torch.Tensor | None = None        # (N,T) pi_k: the policy at the start of this step (before its
                                                 #       updates); equals old_logp for fresh on-policy rows
    advantages: torch.Tensor | None = None       # (N,T)
    loss_weights: torch.Tensor | None = None     # (N,T) global aggregation weights (sum = the batch loss)
    token_weights: torch.Tensor | None = None    # (N,T) token selection on top of loss_weights
    replayed: torch.Tensor | None = None         # (N,) bool: taken from the replay buffer (advantages stored)
    # IGPO (multi-turn rollouts that know the ground truth): the pseudo answer teacher-forced after each turn's
    # history, and the runtime pass's result
    teacher_ids: torch.Tensor | None = None      # (N,A) prefix + ground-truth answer ids, right-padded
    teacher_mask: torch.Tensor | None = None     # (N,A) 1 on the answer tokens (whose probability counts)
    gt_probs: torch.Tensor | None = None         # (N,K) p_k: geometric-mean probability of the answer before
                                                 #       turn k (p_0: prompt only); NaN where not computed
    values: torch.Tensor | None = None           # (N,T) critic's V(s_t) before token t (critic pass)
    returns: torch.Tensor | None = None          # (N,T) the critic's targets (GAE: advantages + values)
    stage_fields: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # declared `StageField`s
    pad_id: int = 0
    step: int = 0
    max_response_len: int = 0  # the generation budget (rollout.max_new_tokens); 0 = unknown (use the width T)

    def response_budget(self) -> int:
        """The generation budget in tokens: `max_response_len` when the runtime set it, else the width T."""
        return self.max_response_len or int(self.response_ids.shape[1])

    def __len__(self) -> int:
        return int(self.response_ids.shape[0])

    def get(self, f: Field) -> torch.Tensor | list[str] | None:
        """A core field's value, or a stage field's (None when no stage wrote it)."""
        if isinstance(f, StageField):
            return self.stage_fields.get(f.value)
        return getattr(self, f.value)

    def put(self, f: Field, value: torch.Tensor) -> None:
        """Set a core or stage field; a stage field's shape is checked against its declaration."""
        if not isinstance(f, StageField):
            setattr(self, BatchField(f).value, value)
            return
        if STAGE_FIELDS.get(f.value) != f:
            raise ValueError(f"stage field {f.value!r} is not declared (declare it with StageField)")
        want = 2 if f.per_token else 1
        if value.dim() != want or value.shape[0] != len(self):
            raise ValueError(f"stage field {f.value!r} takes {'(N,T)' if f.per_token else '(N,)'} values for "
                             f"{len(self)} rows, got shape {tuple(value.shape)}")
        self.stage_fields[f.value] = value

    def copy(self) -> "RolloutBatch":
        """Shallow copy (tensors shared, own prompt_keys list and stage-field dict)."""
        return dataclasses.replace(self, prompt_keys=list(self.prompt_keys), stage_fields=dict(self.stage_fields))

    def _map_rows(self, fn) -> dict:
        core = {f.name: (None if getattr(self, f.name) is None else fn(f.name, getattr(self, f.name)))
                for f in dataclasses.fields(self) if f.name in _ROW_TENSORS}
        return {**core, "stage_fields": {k: fn(k, t) for k, t in self.stage_fields.items()}}

    def to(self, device: torch.device | str) -> "RolloutBatch":
        """Every tensor on `device` (no copy for tensors already there)."""
        return dataclasses.replace(self, **self._map_rows(lambda _, t: t.to(device)))

    def fresh_rows(self) -> torch.Tensor:
        """Indices of the rows generated for this step (not `replayed` from the buffer)."""
        fresh = torch.ones(len(self), dtype=torch.bool) if self.replayed is None else ~self.replayed.bool()
        return fresh.nonzero(as_tuple=True)[0]

    def index(self, idx) -> "RolloutBatch":
        """Rows `idx` (LongTensor, list of ints, bool mask or slice) of every per-row field."""
        n = len(self)
        rows = _as_index(idx, n)

        def take(name: str, t: torch.Tensor) -> torch.Tensor:
            if t.shape[0] != n:
                raise ValueError(f"batch field {name!r} has {t.shape[0]} rows, the batch has {n}")
            return t[rows.to(t.device)]

        keys = [self.prompt_keys[i] for i in rows.tolist()]
        return dataclasses.replace(self, prompt_keys=keys, **self._map_rows(take))

    def padded(self, width: int, model_width: int) -> "RolloutBatch":
        """The same rows right-padded to `width` response tokens and `model_width` model positions
        (masks, log-probs and weights pad with 0; token ids with pad_id)."""
        t, L = self.response_ids.shape[1], 0 if self.input_ids is None else self.input_ids.shape[1]
        if width < t or (self.input_ids is not None and model_width < L):
            raise ValueError(f"cannot pad a batch of widths ({t}, {L}) to ({width}, {model_width})")

        def pad(name: str, x: torch.Tensor) -> torch.Tensor:
            if x.dim() < 2 or name in _OWN_WIDTH:
                return x
            target = model_width if name in _MODEL_WIDE else width
            value = self.pad_id if name in ("response_ids", "input_ids") else 0
            return torch.nn.functional.pad(x, (0, target - x.shape[1]), value=value)

        return dataclasses.replace(self, **self._map_rows(pad))

    @staticmethod
    def cat(batches: list["RolloutBatch"]) -> "RolloutBatch":
        """Concatenate rows; all batches must have the same widths and the same optional fields set."""
        if not batches:
            raise ValueError("RolloutBatch.cat needs at least one batch")
        kw = {}
        for name in _ROW_TENSORS:
            ts = [getattr(b, name) for b in batches]
            if all(t is None for t in ts):
                kw[name] = None
            elif any(t is None for t in ts):
                raise ValueError(f"RolloutBatch.cat: field {name!r} is set in some batches only")
            elif name in _OWN_WIDTH:  # widths of their own (answer tokens, turns): pad to the widest
                w = max(t.shape[1] for t in ts)
                fill = float("nan") if name == "gt_probs" else 0
                kw[name] = torch.cat([torch.nn.functional.pad(t, (0, w - t.shape[1]), value=fill) for t in ts])
            else:
                kw[name] = torch.cat(ts)
        names = set(batches[0].stage_fields)
        for b in batches:
            if set(b.stage_fields) != names:
                odd = sorted(names ^ set(b.stage_fields))
                raise ValueError(f"RolloutBatch.cat: stage field(s) {', '.join(odd)} set in some batches only")
        stage = {k: torch.cat([b.stage_fields[k] for b in batches]) for k in sorted(names)}
        keys = [k for b in batches for k in b.prompt_keys]
        return dataclasses.replace(batches[0], prompt_keys=keys, stage_fields=stage, **kw)


_SCALARS = ("prompt_keys", "pad_id", "step", "max_response_len", "stage_fields")
_MODEL_WIDE = ("input_ids", "attention_mask")
_OWN_WIDTH = ("teacher_ids", "teacher_mask", "gt_probs")
_ROW_TENSORS = tuple(f.name for f in dataclasses.fields(RolloutBatch) if f.name not in _SCALARS)
assert set(_ROW_TENSORS) | {"prompt_keys"} == {f.value for f in BatchField}, "BatchField and RolloutBatch disagree"
