"""Tiny causal LMs and a character-level tokenizer, built locally with no download.

``build_tokenizer(out_dir)`` writes a Hugging Face fast tokenizer (one token per character) that
both transformers (``AutoTokenizer.from_pretrained``) and vLLM load from the directory.
``build_tiny_model(out_dir, size, arch, seed)`` writes a full model directory (config,
generation_config, safetensors weights, tokenizer) with random weights.

Conventions of the tokenizer:

* specials: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3;
* no special token is added on encode (like Qwen2): ``tok("37+48=").input_ids`` is 6 ids, so
  ``ids(prompt) + ids(completion) == ids(prompt + completion)``;
* a byte-level BPE with no merges: one token per byte (ASCII: per character), id = 4 + byte;
  ``skip_special_tokens`` drops ``<eos>``/``<pad>`` when decoding.

Head size is 64 for every size: vLLM's CPU attention backend rejects smaller head sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "SPECIAL_TOKENS",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "SIZES",
    "vocab",
    "char_id",
    "build_tokenizer",
    "model_config",
    "build_tiny_model",
    "count_params",
]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3



def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable-unicode map (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(
        range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# Model sizes. head_dim is 64 everywhere (hidden_size / num_attention_heads).
SIZES: dict[str, dict] = {
    # ~0.8M parameters: warm start + RL in minutes on 2 CPU cores.
    "tiny": dict(hidden_size=128, num_attention_heads=2, num_key_value_heads=2,
                 num_hidden_layers=4, intermediate_size=384, max_position_embeddings=512),
    # ~20M parameters: throughput benchmark with 256-token completions.
    "small": dict(hidden_size=512, num_attention_heads=8, num_key_value_heads=8,
                  num_hidden_layers=6, intermediate_size=1408, max_position_embeddings=1024),
}


def vocab() -> dict[str, int]:
    """Token -> id: the 4 specials, then one token per byte (id = 4 + byte value).

    Tokens are spelled in the byte-level alphabet (space is "\u0120", newline "\u010a"), so ASCII
    text is one token per character and any UTF-8 text is encodable.
    """
    b2u = _bytes_to_unicode()
    toks = list(SPECIAL_TOKENS) + [b2u[b] for b in range(256)]
    return {t: i for i, t in enumerate(toks)}


def char_id(ch: str) -> int:
    """Token id of a single ASCII character."""
    (b,) = ch.encode("utf-8")
    return len(SPECIAL_TOKENS) + b


def build_tokenizer(out_dir: str | os.PathLike | None = None, model_max_length: int = 512):
    """Build the character-level tokenizer; save it to ``out_dir`` when given.

    Returns a ``transformers.PreTrainedTokenizerFast`` with pad/bos/eos/unk set.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE with no merges = one token per byte. This shape matters: transformers 5
    # loads a qwen2 model dir's tokenizer as Qwen2Tokenizer, which rebuilds a byte-level BPE
    # pipeline from vocab + merges (ignoring our pre-tokenizer); with no merges both pipelines
    # give the same ids, so transformers, vLLM and raw `tokenizers` all agree.
    tok = Tokenizer(models.BPE(vocab=vocab(), merges=[], unk_token=None, fuse_unk=False,
                               byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(str(out_dir))
    return fast


def model_config(size: str = "tiny", arch: str = "qwen2", vocab_size: int | None = None):
    """The transformers config for ``size`` ("tiny" | "small") and ``arch`` ("qwen2" | "llama")."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; allowed: {sorted(SIZES)}")
    kw = dict(SIZES[size])
    common = dict(
        vocab_size=vocab_size or len(vocab()),
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        hidden_act="silu",
        initializer_range=0.02,
        use_cache=True,
        dtype="float32",
        **kw,
    )
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(use_sliding_window=False, attention_dropout=0.0, **common)
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(attention_bias=False, mlp_bias=False, head_dim=64, **common)
    raise ValueError(f"unknown arch {arch!r}; allowed: ['llama', 'qwen2']")


def count_params(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def build_tiny_model(out_dir: str | os.PathLike, size: str = "tiny", arch: str = "qwen2",
                     seed: int = 0) -> Path:
    """Save a randomly initialised causal LM + tokenizer to ``out_dir``; returns the path.

    The directory is a normal Hugging Face model dir (safetensors, float32) loadable with
    ``AutoModelForCausalLM.from_pretrained`` and by vLLM. Deterministic in ``seed``.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model_config(size, arch)
    tok = build_tokenizer(out, model_max_length=cfg.max_position_embeddings)
    assert len(tok) == cfg.vocab_size
    cpu_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(cpu_state)
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
        do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
    )
    model.save_pretrained(str(out), safe_serialization=True)
    return out
