"""SFT end to end (Ray + DeepSpeed, the embedded model): held-out loss falls on the built-in
demonstrations, a stopped run resumes to the uninterrupted one's losses, a Hugging Face dataset
directory trains as it is, and the exported model starts GRPO from a higher pass@1 than the base."""

from __future__ import annotations

import pytest

from rltrain.config import load
from rltrain.config.sft import load_sft
from rltrain.driver.trainer import Trainer
from rltrain.sft.train import SFTTrainer

pytestmark = pytest.mark.e2e


def _cfg(tmp_path, default_model, name, **over):
    base = {"model_path": default_model, "data.n_train": 1000, "data.n_test": 64, "train.steps": 30,
            "train.examples_per_step": 64, "train.max_length": 32, "train.eval_every": 0, "learner.lr": 1e-3,
            "learner.micro_batch_size": 32, "train.output_dir": str(tmp_path), "train.run_name": name,
            "logging.wandb": False, "logging.report": False}
    return load_sft(None, {**base, **over})


def _losses(trainer: SFTTrainer, steps: int) -> list[float]:
    return [trainer.step()["sft/loss"] for _ in range(steps)]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, ray_session, default_model):
    trainer = SFTTrainer(_cfg(tmp_path_factory.mktemp("sft"), default_model, "sft"))
    try:
        return trainer.run()
    finally:
        trainer.close()


def test_sft_lowers_the_held_out_loss_and_the_export_starts_grpo_higher(sft_run, tmp_path, ray_session, default_model):
    assert sft_run["eval_loss_after"] < 0.8 * sft_run["eval_loss_before"], sft_run
    pass_at_1 = {}
    for name, path in (("base", default_model), ("sft", sft_run["model"])):
        cfg = load(None, {"model.path": path, "rollout.engine": "transformers", "eval.n_samples": 4,
                          "eval.max_prompts": 64, "data.n_test": 64, "trainer.output_dir": str(tmp_path),
                          "trainer.run_name": name, "logging.wandb": False})
        trainer = Trainer(cfg)
        try:
            pass_at_1[name] = trainer.evaluate()["eval/pass@1"]  # what a GRPO run from this model starts at
        finally:
            trainer.close()
    assert pass_at_1["sft"] > pass_at_1["base"] + 0.05, pass_at_1


def test_resume_gives_the_uninterrupted_losses_and_a_dataset_directory_trains(tmp_path, ray_session, default_model):
    import datasets

    from rltrain.data.tasks import DEFAULT_TASK, make_rows

    full = SFTTrainer(_cfg(tmp_path, default_model, "full"))  # (the runs below take only a few steps)
    try:
        straight = _losses(full, 4)
    finally:
        full.close()
    first = SFTTrainer(_cfg(tmp_path, default_model, "part"))
    try:
        parts = _losses(first, 2)
        first.save()
    finally:
        first.close()
    resumed = SFTTrainer(_cfg(tmp_path, default_model, "part", **{"train.resume": str(tmp_path / "part")}))
    try:
        resumed.restore(resumed.resume_from)
        assert resumed.step_idx == 2
        assert parts + _losses(resumed, 2) == straight
    finally:
        resumed.close()
    rows = [{"prompt": r["prompt"], "completion": r["answer"]} for r in make_rows(DEFAULT_TASK, "train", 80)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "demos"))
    on_disk = SFTTrainer(_cfg(tmp_path, default_model, "disk", **{"data.path": str(tmp_path / "demos"),
                                                                  "train.steps": 2, "train.packing": True}))
    try:
        assert len(on_disk.train) == 72 and len(on_disk.test) == 8  # the last tenth held out
        summary = on_disk.run()
        assert summary["steps"] == 2 and 0 < summary["eval_loss_after"] < 10  # trained, no conversion step
    finally:
        on_disk.close()
