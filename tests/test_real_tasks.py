"""The real model's chat tasks: word problems and the bare arithmetic beside them (rltrain/data/word_problems.py)."""

from __future__ import annotations

import re

import pytest

from rltrain.config import load
from rltrain.data.word_problems import INSTRUCTION, make_arithmetic_rows, make_word_problem_rows
from rltrain.driver.run_setup import load_rows
from rewards.math_reward import math_reward

EXPR = re.compile(r"^(?:What is|Calculate) (\d+) ([-+*]) (\d+)(?: - (\d+))?[?.] ")


def _value(text: str) -> int:
    a, op, b, c = EXPR.match(text).groups()
    a, b = int(a), int(b)
    v = a + b if op == "+" else a - b if op == "-" else a * b
    return v - int(c) if c else v


@pytest.mark.parametrize("split", ["train", "test", "test_alt"])
def test_arithmetic_rows_state_their_answer(split: str) -> None:
    rows = make_arithmetic_rows(split, 200, seed=0)
    assert len({r["prompt"][0]["content"] for r in rows}) == 200
    for r in rows:
        text = r["prompt"][0]["content"]
        assert text.endswith(INSTRUCTION)
        assert text.startswith("Calculate " if split == "test_alt" else "What is ")
        assert int(r["answer"]) == _value(text), text
        assert r["id"].startswith(f"arithmetic:{split}:")


def test_arithmetic_expression_by_hand() -> None:
    assert _value("What is 12 + 7 - 3? x") == 16
    assert _value("Calculate 6 * 7. x") == 42


def test_train_and_test_never_share_a_problem() -> None:
    for make in (make_arithmetic_rows, make_word_problem_rows):
        train = {r["prompt"][0]["content"] for r in make("train", 1500, seed=0)}
        test = {r["prompt"][0]["content"] for r in make("test", 300, seed=0)}
        assert train and test and not train & test


def test_rows_are_deterministic_in_the_seed() -> None:
    assert make_arithmetic_rows("train", 20, seed=1) == make_arithmetic_rows("train", 20, seed=1)
    assert make_arithmetic_rows("train", 20, seed=1) != make_arithmetic_rows("train", 20, seed=2)


def test_the_config_picks_the_alt_split_and_the_math_reward_scores_a_right_answer() -> None:
    cfg = load("configs/smollm2_arith.yaml", {"data.test_split": "test_alt", "data.n_train": 8, "data.n_test": 4})
    train, test = load_rows(cfg)
    assert len(train) == 8 and len(test) == 4
    assert all(r.prompt[0]["content"].startswith("Calculate ") for r in test)
    row = test[0]
    assert math_reward([row.prompt], [f"So it is \\boxed{{{row.answer}}}."], answer=[row.answer]) == [1.0]
    assert math_reward([row.prompt], [f"So it is \\boxed{{{int(row.answer) + 1}}}."], answer=[row.answer]) == [0.0]


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make_arithmetic_rows("dev", 3)


def test_an_unknown_task_or_a_split_the_task_lacks_is_refused_at_load() -> None:
    from rltrain.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.task='nosuch': unknown task; known tasks: default, .*arithmetic"):
        load(None, {"data.task": "nosuch"})
    with pytest.raises(ConfigError, match="data.test_split=test_alt: data.task='rev4' has no test_alt split"):
        load(None, {"data.task": "rev4", "data.test_split": "test_alt"})
    assert load(None, {"data.task": "nosuch", "data.train_files": ["x.jsonl"]}).data.task == "nosuch"  # files win


def test_the_launcher_names_an_unknown_task_in_one_line_and_exits_2(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "launch" / "grpo.py"), "data.task=nosuch",
                           f"trainer.output_dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "data.task='nosuch'" in proc.stderr and not any(tmp_path.iterdir())
