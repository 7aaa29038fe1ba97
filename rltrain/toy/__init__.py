"""toy/: the embedded default's kit: a tiny Qwen2 model with a character tokenizer, built and
warm-started locally on the built-in task (cached under ~/.cache/rltrain).

May import: torch, transformers, `rltrain.data` (the built-in tasks). Never Ray, workers or driver.
"""
