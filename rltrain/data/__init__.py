"""data/: prompt datasets (JSONL/Parquet), the resumable sampler, and the built-in task families.

May import: the standard library, numpy, pyarrow, transformers tokenizers (prompt rendering). Never Ray,
the workers or the driver.
"""

from rltrain.data.datasets import DataError, PromptRow, load_prompts, render_prompt, rows_from_dicts
from rltrain.data.sampler import PromptSampler

__all__ = ["DataError", "PromptRow", "PromptSampler", "load_prompts", "render_prompt", "rows_from_dicts"]
