"""GSM8K-style word problems for the real-model path, generated from a seed (`data.task: word_problems`).

Four kinds (sums, differences, products, two-step), each with names, objects and small numbers drawn
from a seed, as chat prompts that ask for the final answer in `\\boxed{}` (scored by the `math` reward,
math-verify). Splits: `train` and `test` share the training phrasings; `test_alt` uses phrasings the
training split never shows (generalisation rather than template fitting). A problem's split follows
from a hash of its text, so train and test never share a problem.

`data.task: arithmetic` is the easier real task beside it: the same numbers as bare expressions
("What is 12 + 7 - 3?"), with the same instruction and splits (`test_alt` phrased "Calculate ...").
The 135M model starts near 15% sampled accuracy there against about 7% on the word problems, so more
groups carry a reward spread at a small sample budget, and answers are short.
"""

from __future__ import annotations

import hashlib
import random

SPLITS = ("train", "test", "test_alt")
INSTRUCTION = "Solve the problem. Put the final answer in \\boxed{}."
NAMES = ("Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jon", "Kim", "Lea", "Max", "Nia", "Omar",
         "Pia")
THINGS = ("apples", "marbles", "stickers", "pencils", "cards", "books", "coins", "shells")

# kind -> (training phrasings, test_alt phrasings); fields: n (name), t (things), a, b, c
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sum": (("{n} has {a} {t} and gets {b} more. How many {t} does {n} have now?",
             "There are {a} {t} in a bag. {n} puts in {b} more. How many {t} are in the bag?"),
            ("Adding {b} {t} to a pile of {a} {t}, how large is the pile?",)),
    "difference": (("{n} had {a} {t} and gave {b} away. How many {t} are left?",
                    "A shelf holds {a} {t}. {n} takes {b} of them. How many {t} stay on the shelf?"),
                   ("Of {a} {t}, {b} are lost. What number remains?",)),
    "product": (("{n} buys {a} boxes with {b} {t} in each box. How many {t} does {n} buy?",
                 "Each of {a} friends brings {b} {t}. How many {t} do they bring in all?"),
                ("{a} rows of {b} {t}: what is the total count?",)),
    "two_step": (("{n} has {a} {t}, buys {b} more, then gives {c} to a friend. How many {t} does {n} have?",
                  "A jar has {a} {t}. {n} adds {b} and later removes {c}. How many {t} are in the jar?"),
                 ("Begin at {a} {t}; gain {b}; lose {c}. How many {t} at the end?",)),
}


def _numbers(kind: str, rng: random.Random) -> tuple[int, int, int, int]:
    if kind == "sum":
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return a, b, 0, a + b
    if kind == "difference":
        a = rng.randint(5, 40)
        b = rng.randint(1, a - 1)
        return a, b, 0, a - b
    if kind == "product":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return a, b, 0, a * b
    a, b = rng.randint(3, 20), rng.randint(2, 15)
    c = rng.randint(1, a + b - 1)
    return a, b, c, a + b - c


def _split_of(text: str) -> str:
    h = int.from_bytes(hashlib.sha256(f"word_problems:{text}".encode()).digest()[:8], "big")
    return "test" if h % 5 == 0 else "train"


def make_problem(rng: random.Random, alt: bool = False) -> dict:
    kind = rng.choice(sorted(TEMPLATES))
    a, b, c, answer = _numbers(kind, rng)
    template = rng.choice(TEMPLATES[kind][1 if alt else 0])
    text = template.format(n=rng.choice(NAMES), t=rng.choice(THINGS), a=a, b=b, c=c)
    return {"question": text, "answer": str(answer), "kind": kind}


EXPRESSIONS = {"sum": "{a} + {b}", "difference": "{a} - {b}", "product": "{a} * {b}", "two_step": "{a} + {b} - {c}"}


def make_expression(rng: random.Random, alt: bool = False) -> dict:
    kind = rng.choice(sorted(EXPRESSIONS))
    a, b, c, answer = _numbers(kind, rng)
    expr = EXPRESSIONS[kind].format(a=a, b=b, c=c)
    return {"question": f"Calculate {expr}." if alt else f"What is {expr}?", "answer": str(answer), "kind": kind}


def _rows(task: str, make, split: str, n: int, seed: int) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    rng = random.Random(f"{task}:{split}:{seed}")
    rows, seen, tries = [], set(), 0
    while len(rows) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError(f"cannot draw {n} distinct {task} {split} problems")
        p = make(rng, alt=split == "test_alt")
        if p["question"] in seen or (split != "test_alt" and _split_of(p["question"]) != split):
            continue
        seen.add(p["question"])
        rows.append({"prompt": [{"role": "user", "content": f"{p['question']} {INSTRUCTION}"}],
                     "answer": p["answer"], "kind": p["kind"], "split": split,
                     "id": f"{task}:{split}:{p['question']}"})
    return rows


def make_word_problem_rows(split: str, n: int, seed: int = 0) -> list[dict]:
    """`n` distinct rows of `split` (train / test / test_alt) as chat prompts, deterministic in `seed`."""
    return _rows("word_problems", make_problem, split, n, seed)


def make_arithmetic_rows(split: str, n: int, seed: int = 0) -> list[dict]:
    """`n` distinct bare-expression rows of `split` (train / test / test_alt), deterministic in `seed`."""
    return _rows("arithmetic", make_expression, split, n, seed)
