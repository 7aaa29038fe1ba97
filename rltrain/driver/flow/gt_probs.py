"""IGPO's ground-truth probabilities by batched teacher forcing (ALGORITHMS.md §6; arXiv 2510.14967 eq. 5).

For every row and every turn k of its episode, the query is the history before turn k (p_0: the
prompt alone; p_{k+1}: after turn k and its observation) followed by the environment's pseudo answer
(`teacher_ids`: a prefix such as "a " and the ground-truth answer). p_k is the geometric-mean
probability of the answer tokens, exp(mean_j log pi(a_j | history, prefix, a_<j)), under the learners'
weights (the policy that generated the rollout on the synchronous schedule). All queries of a batch
go to the learner ranks as one packed batch; rows without a ground truth get NaN.
"""

from __future__ import annotations

import torch

from algorithms import RolloutBatch
from rltrain.driver.flow.rollout import pack_samples


def teacher_queries(batch: RolloutBatch) -> tuple[RolloutBatch | None, list[tuple[int, int]], int]:
    """The packed queries, the (row, turn) of each, and the batch's largest turn count."""
    n_turns = (batch.turn_ids.max(1).values + 1).clamp(min=1)
    K = int(n_turns.max()) if len(batch) else 1
    if batch.teacher_ids is None:
        return None, [], K
    prompts, answers, where = [], [], []
    for i in range(len(batch)):
        keep = batch.teacher_mask[i] > 0
        if not keep.any():
            continue
        ids = batch.teacher_ids[i]
        last = int(keep.nonzero().max()) + 1
        first = int(keep.nonzero().min())
        prefix, answer = ids[:first].tolist(), ids[first:last].tolist()
        start = int(batch.resp_start[i])
        for k in range(int(n_turns[i])):
            turn_pos = (batch.turn_ids[i] == k).nonzero()
            offset = int(turn_pos.min()) if len(turn_pos) else 0
            prompts.append(batch.input_ids[i, : start + offset].tolist() + prefix)
            answers.append(answer)
            where.append((i, k))
    if not where:
        return None, [], K
    packed, _ = pack_samples(prompts, answers, batch.pad_id)
    queries = RolloutBatch(
        response_ids=packed["response_ids"], response_mask=packed["response_mask"],
        rewards=torch.zeros(len(where)), group_ids=torch.arange(len(where)), prompt_keys=[""] * len(where),
        input_ids=packed["input_ids"], attention_mask=packed["attention_mask"], resp_start=packed["resp_start"],
        pad_id=batch.pad_id, step=batch.step)
    return queries, where, K


def gt_probs_from_logprobs(logp: torch.Tensor, queries: RolloutBatch, where: list[tuple[int, int]], n_rows: int,
                           n_turns: int) -> torch.Tensor:
    """(N,K) p_k = exp(mean log-prob of the answer tokens) per (row, turn); NaN where not queried."""
    m = queries.response_mask
    mean = (logp * m).sum(1) / m.sum(1).clamp(min=1)
    out = torch.full((n_rows, n_turns), float("nan"))
    for q, (i, k) in enumerate(where):
        out[i, k] = float(torch.exp(mean[q]))
    return out
