"""A tiny Qwen2 model and a character-level tokenizer, built locally (nothing downloaded)."""

from __future__ import annotations

import string

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
CHARS = list(string.printable) + ["π", "√", "é", "中", "文"]


def char_tokenizer():
    """A WordLevel tokenizer over single characters, wrapped for transformers."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + [c for c in dict.fromkeys(CHARS) if c not in SPECIALS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
    )
    return fast


def tiny_qwen2_config(vocab_size: int):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=1, num_key_value_heads=1, head_dim=64, max_position_embeddings=256,
        tie_word_embeddings=True, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )


import os as _os

#: the repository root (tests/rewards/ is two levels down)
REPO = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
