"""Built-in verifiable tasks, generated deterministically from a seed.

Every task turns a seed into rows ``{"prompt", "answer", "task", "split", "id", ...meta}``.
Prompts are plain text (no chat template), e.g. ``"37+48="``; the answer is the exact string the
model should emit after the prompt, e.g. ``"85"``, followed by the tokenizer's eos token.
:func:`is_correct` is the task's own definition of a right completion: the text before the first
eos (or newline), stripped, equals ``answer`` character for character ("0321" is not "321").
Training and the trainer's evaluation score with the configured reward instead (the toy config:
``rewards`` ``exact_match``, which also normalises numbers, so "321" scores on "0321").

Train and test splits are disjoint by construction: a problem belongs to the test split when a
SHA-256 hash of ``"<task>:<prompt>"`` falls in the task's test fraction, so the split of a problem
never depends on the seed, the row count or the machine. Sampling uses ``random.Random`` seeded
with a string, which is the same on every platform and Python version >= 3.2.

    >>> rows = make_rows("add2", "train", 4, seed=0)
    >>> sorted(rows[0])
    ['a', 'answer', 'b', 'id', 'prompt', 'split', 'task']
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Iterable

__all__ = ["TASKS", "DEFAULT_TASK", "SPLITS", "Task", "get_task", "split_of", "make_rows", "is_correct"]

SPLITS = ("train", "test")
DEFAULT_TASK = "rev4"


@dataclass(frozen=True)
class Task:
    """One task family.

    ``sample(rng)`` draws a problem ``(prompt, answer, meta)``; ``enumerate()`` (optional) lists
    every problem when the space is small enough to list, which lets ``make_rows`` draw without
    replacement from the exact split pool. ``max_answer_chars`` is the longest answer (one token per
    character with the toy tokenizer, so ``rollout.max_new_tokens`` needs one more for the eos).
    """

    name: str
    description: str
    sample: Callable[[random.Random], tuple[str, str, dict]]
    enumerate: Callable[[], Iterable[tuple[str, str, dict]]] | None = None
    test_fraction: float = 0.2
    max_answer_chars: int = 8


# --------------------------------------------------------------------------- task definitions


def _binop(sym: str, fn: Callable[[int, int], int], lo_a: int, hi_a: int, lo_b: int, hi_b: int):
    def make(a: int, b: int) -> tuple[str, str, dict]:
        return f"{a}{sym}{b}=", str(fn(a, b)), {"a": a, "b": b}

    def sample(rng: random.Random):
        return make(rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b))

    def enum():
        for a in range(lo_a, hi_a + 1):
            for b in range(lo_b, hi_b + 1):
                yield make(a, b)

    small = (hi_a - lo_a + 1) * (hi_b - lo_b + 1) <= 200_000
    return sample, (enum if small else None)


def _digits_task(kind: str, length: int):
    def make(s: str) -> tuple[str, str, dict]:
        if kind == "rev":
            out = s[::-1]
        elif kind == "sort":
            out = "".join(sorted(s))
        else:  # pragma: no cover
            raise ValueError(kind)
        return f"{kind} {s}=", out, {"digits": s}

    def sample(rng: random.Random):
        return make("".join(rng.choice("0123456789") for _ in range(length)))

    def enum():
        for i in range(10**length):
            yield make(str(i).zfill(length))

    return sample, (enum if 10**length <= 200_000 else None)


SEARCH_ENTITIES = tuple(a + b for a in "abcdefghijklmnopqrstuvwxyz" for b in "abcdefghijklmnopqrstuvwxyz")


def search_fact(world: int, entity: str) -> str:
    """The toy knowledge base: a 2-digit value per 2-letter entity, drawn from `world` (the search
    environment looks facts up here; the warm start learns the format on another world)."""
    h = hashlib.sha256(f"search-world:{world}:{entity}".encode()).digest()
    return str(10 + int.from_bytes(h[:4], "big") % 90)


def _search_task():
    def make(entity: str) -> tuple[str, str, dict]:
        return f"{entity}?", search_fact(0, entity), {"entity": entity, "world": 0}

    return (lambda rng: make(rng.choice(SEARCH_ENTITIES))), (lambda: (make(e) for e in SEARCH_ENTITIES))


CHAIN_HOPS = 3  # lookups a multi-hop question needs


@functools.lru_cache(maxsize=8)
def _chains(world: int) -> dict[str, str]:
    """The multi-hop knowledge base of `world`: entity -> fact. The entities, shuffled by the world's seed,
    form chains of three, e0 -> e1 -> e2 -> a 2-digit value (`search_fact`); the leftover entity holds a value."""
    order = list(SEARCH_ENTITIES)
    random.Random(f"search-chain-world:{world}").shuffle(order)
    facts = {e: search_fact(world, e) for e in order}
    for i in range(0, len(order) - CHAIN_HOPS + 1, CHAIN_HOPS):
        for a, b in zip(order[i:i + CHAIN_HOPS - 1], order[i + 1:i + CHAIN_HOPS]):
            facts[a] = b
    return facts


def chain_fact(world: int, entity: str) -> str:
    """What looking `entity` up in the multi-hop knowledge base returns: the next entity or the value."""
    return _chains(world)[entity]


@functools.lru_cache(maxsize=8)
def chain_heads(world: int) -> tuple[str, ...]:
    """The entities a multi-hop question asks about: the first of each chain (sorted)."""
    facts = _chains(world)
    pointed = {v for v in facts.values() if v in facts}
    return tuple(sorted(e for e, v in facts.items() if v in facts and e not in pointed))


def chain_answer(world: int, entity: str) -> str:
    """The value at the end of `entity`'s chain."""
    value = chain_fact(world, entity)
    while not value.isdigit():
        value = chain_fact(world, value)
    return value


def _search_chain_task():
    def make(entity: str) -> tuple[str, str, dict]:
        return f"{entity}?", chain_answer(0, entity), {"entity": entity, "world": 0}

    return (lambda rng: make(rng.choice(chain_heads(0)))), (lambda: (make(e) for e in chain_heads(0)))


def _calc_task():
    """`c 47*83?` -> 3901: 2-digit products, which the tiny model cannot compute but can read off the code
    interpreter (`env.name: code`, rltrain/envs/code_interpreter.py)."""
    def make(a: int, b: int) -> tuple[str, str, dict]:
        return f"c {a}*{b}?", str(a * b), {"a": a, "b": b}

    return (lambda rng: make(rng.randint(10, 99), rng.randint(10, 99))), \
        (lambda: (make(a, b) for a in range(10, 100) for b in range(10, 100)))


def _register(tasks: dict, name: str, description: str, pair, **kw) -> None:
    sample, enum = pair
    tasks[name] = Task(name=name, description=description, sample=sample, enumerate=enum, **kw)


TASKS: dict[str, Task] = {}
_register(TASKS, "add1", "a+b= with a, b in 0..9 (sanity task, 100 problems)",
          _binop("+", lambda a, b: a + b, 0, 9, 0, 9), max_answer_chars=2)
_register(TASKS, "add2", "a+b= with a, b in 0..99 (10,000 problems; answer 1-3 digits)",
          _binop("+", lambda a, b: a + b, 0, 99, 0, 99), max_answer_chars=3)
_register(TASKS, "add2f", "a+b= with a, b in 10..99 (fixed width; 8,100 problems; answer 2-3 digits)",
          _binop("+", lambda a, b: a + b, 10, 99, 10, 99), max_answer_chars=3)
_register(TASKS, "add3", "a+b= with a, b in 0..999 (answer 1-4 digits)",
          _binop("+", lambda a, b: a + b, 0, 999, 0, 999), max_answer_chars=4)
_register(TASKS, "sub2", "a-b= with a, b in 0..99 (answer may be negative)",
          _binop("-", lambda a, b: a - b, 0, 99, 0, 99), max_answer_chars=3)
_register(TASKS, "mul1", "a*b= with a in 0..99, b in 0..9 (answer 1-3 digits)",
          _binop("*", lambda a, b: a * b, 0, 99, 0, 9), max_answer_chars=3)
_register(TASKS, "rev4", "rev dddd= -> the 4 digits reversed", _digits_task("rev", 4),
          max_answer_chars=4)
_register(TASKS, "search", "xy? -> the value of entity xy, found with the search environment (multi-turn; "
          "676 entities)", _search_task(), max_answer_chars=2)
_register(TASKS, "search_chain", "xy? -> the value at the end of xy's chain of 3 facts (xy=ab, ab=cd, cd=37), "
          "found with 3 calls to the search_chain environment (multi-turn; 225 questions)", _search_chain_task(),
          max_answer_chars=2)
_register(TASKS, "calc", "c ab*cd? -> the product, computed with the code interpreter (multi-turn; 8,100 "
          "problems)", _calc_task(), max_answer_chars=4)
_register(TASKS, "sort5", "sort ddddd= -> the 5 digits in ascending order", _digits_task("sort", 5),
          max_answer_chars=5)


def get_task(task: str) -> Task:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}") from None


# --------------------------------------------------------------------------- splits and rows


def split_of(task: str, prompt: str) -> str:
    """The split ("train" or "test") a problem belongs to; depends on task and prompt only."""
    t = get_task(task)
    h = int.from_bytes(hashlib.sha256(f"{task}:{prompt}".encode()).digest()[:8], "big")
    return "test" if (h % 1_000_000) < round(t.test_fraction * 1_000_000) else "train"


def _row(task: str, split: str, prompt: str, answer: str, meta: dict) -> dict:
    row = {"prompt": prompt, "answer": answer, "task": task, "split": split,
           "id": f"{task}:{prompt}"}
    row.update(meta)
    return row


@functools.lru_cache(maxsize=16)
def _pool(task: str, split: str) -> tuple:
    t = get_task(task)
    assert t.enumerate is not None
    return tuple(p for p in t.enumerate() if split_of(task, p[0]) == split)


def make_rows(task: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of ``task`` from ``split`` ("train" or "test"), deterministic in ``seed``.

    Rows are distinct while the split has enough distinct problems; when ``n`` exceeds the split's
    size (small enumerable tasks) the split is repeated in a fresh shuffled order.
    Keys: ``prompt``, ``answer`` (str), ``task``, ``split``, ``id`` (stable, unique per problem)
    plus task meta columns (e.g. ``a``, ``b``).
    """
    t = get_task(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"rltrain:{task}:{split}:{int(seed)}")
    rows: list[dict] = []
    if t.enumerate is not None:
        pool = _pool(task, split)
        if not pool:
            raise ValueError(f"task {task!r} has no problems in split {split!r}")
        while len(rows) < n:
            order = list(range(len(pool)))
            rng.shuffle(order)
            for i in order[: n - len(rows)]:
                prompt, answer, meta = pool[i]
                rows.append(_row(task, split, prompt, answer, dict(meta)))
        return rows
    seen: set[str] = set()
    misses = 0
    while len(rows) < n:
        prompt, answer, meta = t.sample(rng)
        if split_of(task, prompt) != split:
            continue
        if prompt in seen and misses < 10_000:
            misses += 1
            continue
        seen.add(prompt)
        rows.append(_row(task, split, prompt, answer, meta))
    return rows


# --------------------------------------------------------------------------- scoring


def is_correct(completion: str, answer: str, eos_token: str | None = "<eos>") -> bool:
    """The text before the first ``eos_token`` or newline, stripped, equals ``answer`` (stripped)."""
    text = completion.split(eos_token, 1)[0] if eos_token else completion
    return text.split("\n", 1)[0].strip() == str(answer).strip()
