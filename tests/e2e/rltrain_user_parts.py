"""Parts a user would keep in their own package, named in config by import path (not a test module).

`tests/conftest.py` puts this folder on the Ray workers' PYTHONPATH, as a user's installed package
would be.
"""

from __future__ import annotations

from rltrain.engines.transformers_engine import TransformersEngine


class CountingEngine(TransformersEngine):
    """A user engine: transformers `generate`, plus a record of how the trainer drove it."""

    def __init__(self, model_path: str, dtype: str = "float32", seed: int = 0, tag: str = "") -> None:
        super().__init__(model_path, dtype, seed)
        self.tag = tag
        self.generate_calls = 0
        self.synced_versions: list[int] = []

    def generate(self, prompt_ids, sampling):
        self.generate_calls += 1
        return super().generate(prompt_ids, sampling)

    def finish_weight_update(self, version: int) -> None:
        self.synced_versions.append(version)
        super().finish_weight_update(version)
