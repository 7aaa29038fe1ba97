"""rltrain.data.tasks: the built-in task families (deterministic rows, disjoint splits, answers)."""

from __future__ import annotations

import doctest
import random

import pytest

from rltrain.data import tasks
from rltrain.data.tasks import chain_answer, search_fact, DEFAULT_TASK, TASKS, get_task, is_correct, make_rows, split_of


def test_module_doctest():
    assert doctest.testmod(tasks).failed == 0


def test_rows_are_deterministic_and_pinned():
    a = make_rows("rev4", "train", 50, seed=0)
    assert a == make_rows("rev4", "train", 50, seed=0)
    assert a != make_rows("rev4", "train", 50, seed=1)
    # pinned: the rows (and so every run on the built-in task) are the same on every machine
    assert a[0] == {"prompt": "rev 2034=", "answer": "4302", "task": "rev4", "split": "train",
                    "id": "rev4:rev 2034=", "digits": "2034"}
    assert [r["prompt"] for r in make_rows("add2", "test", 2, seed=3)] == ["78+33=", "65+17="]
    assert DEFAULT_TASK == "rev4"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_answers_splits_and_widths(task):
    t = get_task(task)
    train = make_rows(task, "train", 300, seed=0)
    test = make_rows(task, "test", 100, seed=0)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    for r in train + test:
        assert split_of(task, r["prompt"]) == r["split"] and r["id"] == f"{task}:{r['prompt']}"
        assert len(r["answer"]) <= t.max_answer_chars, r
        if task == "calc":  # asked as "c 47*83?", computed with the code interpreter
            assert r["prompt"] == f"c {r['a']}*{r['b']}?" and r["answer"] == str(r["a"] * r["b"]), r
        elif "a" in r:
            op = r["prompt"][len(str(r["a"]))]
            want = {"+": r["a"] + r["b"], "-": r["a"] - r["b"], "*": r["a"] * r["b"]}[op]
            assert r["answer"] == str(want), r
        elif task == "search_chain":  # the value at the end of the entity's chain in world 0
            assert r["prompt"] == f"{r['entity']}?" and r["answer"] == chain_answer(0, r["entity"])
        elif "entity" in r:  # the search task: the value of the entity in knowledge-base world 0
            assert r["prompt"] == f"{r['entity']}?" and r["answer"] == search_fact(0, r["entity"])
            assert 10 <= int(r["answer"]) <= 99
        else:
            d = r["digits"]
            assert r["answer"] == (d[::-1] if task.startswith("rev") else "".join(sorted(d))), r
    if task not in ("add1", "search_chain"):  # 100 and 225 problems in all; the others have over 300 per split
        assert len({r["prompt"] for r in train}) == len(train)  # distinct while the split is large enough


@pytest.mark.parametrize("task", [name for name, t in TASKS.items() if t.enumerate is not None])
def test_every_answer_fits_max_answer_chars(task):
    t = get_task(task)
    assert max(len(answer) for _, answer, _ in t.enumerate()) == t.max_answer_chars


def test_test_fraction_and_split_independent_of_seed():
    prompts = [f"rev {i:04d}=" for i in range(10_000)]
    share = sum(split_of("rev4", p) == "test" for p in prompts) / len(prompts)
    assert abs(share - get_task("rev4").test_fraction) < 0.02
    assert {r["split"] for r in make_rows("rev4", "test", 20, seed=random.randrange(1000))} == {"test"}


def test_small_split_repeats_in_a_new_order():
    pool = {r["prompt"] for r in make_rows("add1", "test", 1000, seed=0)}
    rows = make_rows("add1", "test", 2 * len(pool) + 3, seed=0)
    assert {r["prompt"] for r in rows} == pool
    first, second = rows[: len(pool)], rows[len(pool): 2 * len(pool)]
    assert {r["prompt"] for r in first} == pool and first != second


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_rows("nope", "train", 1)
    with pytest.raises(ValueError, match="unknown split"):
        make_rows("rev4", "dev", 1)
    with pytest.raises(ValueError, match="n must be >= 0"):
        make_rows("rev4", "train", -1)
    assert make_rows("rev4", "train", 0) == []


def test_is_correct():
    assert is_correct("4321<eos>", "4321")
    assert is_correct(" 4321 <eos><pad><pad>", "4321")
    assert is_correct("4321\nmore text", "4321")  # a newline ends the answer too
    assert is_correct("4321<eos>9", "4321")
    assert not is_correct("0321<eos>", "321") and not is_correct("321<eos>", "0321")  # no number normalising
    assert not is_correct("43210<eos>", "4321")
    assert not is_correct("<eos>4321", "4321")
    assert not is_correct("", "0")
    assert is_correct("85", 85)  # the answer may be given as a number
    assert is_correct("12</s>", "12", eos_token="</s>")
    assert not is_correct("12<eos>", "12", eos_token=None)
