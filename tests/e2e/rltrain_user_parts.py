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


class NoResumeEngine(TransformersEngine):
    """A user engine that cannot pause and resume a sample (so partial rollouts must refuse it)."""

    resumes_partial = False


class RecordingEngine:
    """A registered engine (`inner`) that keeps every continuation it returns: (sequence in, ids out)."""

    resumes_partial = True

    def __init__(self, model_path: str, dtype: str = "float32", seed: int = 0, inner: str = "transformers") -> None:
        from rltrain.engines import engine_class

        self.inner = engine_class(inner)(model_path, dtype, seed)
        self.log: list[tuple[list[int], list[int]]] = []

    @property
    def version(self) -> int:
        return self.inner.version

    def generate(self, prompt_ids, sampling):
        return self.inner.generate(prompt_ids, sampling)

    def continue_sequences(self, sequences, sampling):
        out = self.inner.continue_sequences(sequences, sampling)
        self.log += [(list(sequences[s.prompt_index]), list(s.response_ids)) for s in out]
        return out

    def load_weights(self, named_tensors) -> None:
        self.inner.load_weights(named_tensors)

    def finish_weight_update(self, version: int) -> None:
        self.inner.finish_weight_update(version)

    def free_memory(self) -> bool:
        return False

    def restore_memory(self) -> bool:
        return False


class MisbehavingEnv:
    """The search environment, broken in one way per episode, picked by the entity's first letter:
    a-e raise, f-j hang, k-o return a non-string observation, p-t flood the budget with a long
    observation, u-z behave (and the model may still never answer)."""

    def __init__(self) -> None:
        from rltrain.envs.search import SearchEnv

        self.inner = SearchEnv()
        self.mode = "ok"

    def reset(self, row):
        c = row.columns["entity"][0]
        self.mode = "raise" if c <= "e" else "hang" if c <= "j" else "type" if c <= "o" else "flood" if c <= "t" else "ok"
        return self.inner.reset(row)

    def step(self, history):
        import time

        from rltrain.envs import StepResult

        if self.mode == "raise":
            raise RuntimeError("search backend down")
        if self.mode == "hang":
            time.sleep(30)
        if self.mode == "type":
            return StepResult(observation=["not", "text"])
        if self.mode == "flood":
            return StepResult(observation="x" * 100)
        return self.inner.step(history)

    def score(self, history):
        return self.inner.score(history)


from algorithms.stages.objectives_clip import PPOClip  # noqa: E402


class NaNObjective(PPOClip):
    """The ppo_clip loss times NaN: what a numerical blow-up looks like to the learner."""

    def loss(self, logp, mb, w):
        loss, metrics = super().loss(logp, mb, w)
        return loss * float("nan"), metrics


def overconfident_reward(prompts, completions, **columns):
    """A user reward that declares scores in [0, 1] and returns 2.0: a verifier gone wrong (issue #34)."""
    return [2.0 for _ in completions]


overconfident_reward.score_range = (0.0, 1.0)
