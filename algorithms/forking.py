"""High-entropy "forking token" selection — "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive
Effective RL for LLM Reasoning" (Wang et al., arXiv 2506.01939, eq. 6; code
zhouxiangxin1998/Beyond-the-80-20-Rule-RLVR `get_global_entropy_top_mask`).

rltrain decision: the top `top_ratio` of entropies is taken over ALL response tokens of the whole update
batch (not per micro-batch), so the selection does not depend on how the batch is split.
"""

from __future__ import annotations

import math

import torch


def high_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, top_ratio: float = 0.2) -> torch.Tensor:
    """bool (N,T): the k = max(1, ceil(top_ratio * #response tokens)) highest-entropy response tokens.

    Ties are broken by position (earlier flat index first) so the mask is deterministic."""
    valid = mask > 0
    out = torch.zeros_like(valid)
    count = int(valid.sum())
    if count == 0:
        return out
    k = max(1, math.ceil(top_ratio * count))
    pos = valid.reshape(-1).nonzero(as_tuple=True)[0]
    ent = entropy.reshape(-1)[pos].to(torch.float64)
    order = torch.argsort(-ent, stable=True)[:k]
    out.view(-1)[pos[order]] = True
    return out
