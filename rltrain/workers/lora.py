"""LoRA on the learner through peft (Hu et al. 2021, arXiv:2106.09685: W' = W + (alpha/r) B A).

`wrap(model, cfg)` freezes the base weights and adds adapters on `cfg.target_modules`. Engines never
see adapters: `merged_params` yields every base parameter under its plain Hugging Face name, with
the adapter's delta added where there is one, computed on the fly (the model is never merged in
place, so nothing drifts over many syncs). The export writes those merged weights as a plain model.
"""

from __future__ import annotations

from typing import Iterator

import torch


def wrap(model: torch.nn.Module, cfg) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # e.g. no module matches target_modules
        raise ValueError(f"learner.lora.target_modules={list(cfg.target_modules)}: {e}") from None


@torch.no_grad()
def merged_params(peft_model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(plain HF name, merged CPU tensor) for every base parameter, tied aliases included. Each delta is
    computed when its parameter is reached, so a sync holds one merged weight at a time beyond its buckets."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    adapted = {f"{name}.base_layer.weight": mod for name, mod in base.named_modules() if isinstance(mod, LoraLayer)}
    for name, param in base.named_parameters(remove_duplicate=False):
        if "lora_" in name:
            continue
        t, mod = param.detach(), adapted.get(name)
        if mod is not None:  # W + (alpha/r) B A: a new tensor
            t = (t + sum(mod.get_delta_weight(a) for a in mod.active_adapters).to(t.dtype)).cpu()
        else:
            t = t.to("cpu", copy=True)
        yield name.replace(".base_layer.", "."), t

