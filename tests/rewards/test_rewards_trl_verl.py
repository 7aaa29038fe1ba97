"""An rltrain reward inside TRL's GRPOTrainer (one step) and through verl's compute_score."""

import importlib.util
import json
import os
import sys

from _rewards_helpers import REPO

HERE = os.path.dirname(os.path.abspath(__file__))


def test_grpo_trainer_one_step_with_rltrain_reward(trl_step):
    proc, out = trl_step  # started at collection time (conftest), runs beside the other tests
    proc.wait(timeout=240)
    out.seek(0)
    text = out.read()
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, text[-8000:]
    res = json.loads(lines[-1][len("RESULT "):])
    assert res["global_step"] == 1
    assert res["samples_scored"] >= 4  # 2 prompts x 2 generations per step
    assert res["reward_mean"] is not None and res["finite_loss"]


def _load_like_verl(path):
    """verl's custom_reward_function loader: import a file by path as a module."""
    spec = importlib.util.spec_from_file_location("custom_module", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_module"] = module
    spec.loader.exec_module(module)
    return module


def test_verl_compute_score_entry_point():
    module = _load_like_verl(os.path.join(REPO, "rewards", "adapters.py"))
    compute_score = module.verl_compute_score
    reward_kwargs = {"reward": "math", "isolation": "inline"}  # verl's custom_reward_function.reward_kwargs
    # verl's NaiveRewardManager call shape
    assert compute_score(data_source="openai/gsm8k", solution_str="so \\boxed{\\frac{1}{2}}", ground_truth="0.5",
                         extra_info={"split": "test", "index": 0}, **reward_kwargs) == 1.0
    assert compute_score(data_source="openai/gsm8k", solution_str="\\boxed{3}", ground_truth="4",
                         extra_info=None, **reward_kwargs) == 0.0
    assert compute_score("x", "", "4", None, **reward_kwargs) == 0.0
    assert compute_score("x", "\\boxed{4}", None, None, **reward_kwargs) == 0.0  # no score -> verl default 0.0
