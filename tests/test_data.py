"""Tests for rltrain.data: loading, validation messages, stable keys, sampler determinism/resume."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rltrain.data import DataError, PromptRow, PromptSampler, load_prompts, render_prompt, rows_from_dicts

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]


def write_jsonl(path: Path, lines: list) -> str:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


# --- loading -------------------------------------------------------------------------------------


def test_load_jsonl_text_and_chat(tmp_path):
    p = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"prompt": "1+1=", "answer": 2, "level": "easy"},
            "",  # blank lines are skipped
            {"prompt": CHAT, "answer": "4", "id": "q7", "src": {"k": [1]}},
            {"prompt": "x", "answer": 1.5},
        ],
    )
    rows = load_prompts(p)
    assert rows[0] == PromptRow("1+1=", "2", {"level": "easy"}, "train.jsonl:0")
    assert rows[1].prompt == CHAT and rows[1].answer == "4"
    assert rows[1].key == "q7" and rows[1].columns == {"id": "q7", "src": {"k": [1]}}
    assert rows[2].key == "train.jsonl:2" and rows[2].answer == "1.5"


def test_load_parquet_and_list_of_files(tmp_path):
    table = pa.table(
        {
            "question": ["a?", "b?"],
            "sol": [1, 2],
            "msgs": [CHAT, [{"role": "user", "content": "hi"}]],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    jl = write_jsonl(tmp_path / "e.jsonl", [{"question": "c?", "sol": "3"}])
    rows = load_prompts([tmp_path / "d.parquet", jl], prompt_key="question", answer_key="sol")
    assert [r.prompt for r in rows] == ["a?", "b?", "c?"]
    assert [r.answer for r in rows] == ["1", "2", "3"]
    assert [r.key for r in rows] == ["d.parquet:0", "d.parquet:1", "e.jsonl:0"]
    assert rows[0].columns == {"msgs": CHAT}
    chat_rows = load_prompts(tmp_path / "d.parquet", prompt_key="msgs", answer_key="sol")
    assert chat_rows[0].prompt == CHAT and chat_rows[0].columns == {"question": "a?"}


def test_keys_are_stable_across_loads(tmp_path):
    p = write_jsonl(tmp_path / "k.jsonl", [{"prompt": f"p{i}", "answer": i} for i in range(5)])
    assert [r.key for r in load_prompts(p)] == [r.key for r in load_prompts(p)]


def test_optional_answer(tmp_path):
    p = write_jsonl(tmp_path / "n.jsonl", [{"prompt": "a"}, {"prompt": "b", "answer": None}])
    assert [r.answer for r in load_prompts(p, require_answer=False)] == [None, None]
    with pytest.raises(DataError, match=r"n\.jsonl:1: missing answer column 'answer'"):
        load_prompts(p)


@pytest.mark.parametrize(
    "bad, reason",
    [
        ('{"prompt": "a", ', "invalid JSON"),
        ("[1, 2]", "row is list, expected an object"),
        ({"question": "a", "answer": 1}, "missing prompt column 'prompt' (columns: question, answer)"),
        ({"prompt": 5, "answer": 1}, "column 'prompt' must be a string or a list of {role, content} messages, got int"),
        ({"prompt": [{"role": "user"}], "answer": 1}, "message 0 of 'prompt' has no 'content'"),
        ({"prompt": [{"content": "x"}], "answer": 1}, "message 0 of 'prompt' has no 'role'"),
        ({"prompt": ["hi"], "answer": 1}, "message 0 of 'prompt' is str, expected an object"),
        ({"prompt": [{"role": "user", "content": 3}], "answer": 1}, "'content' must be a string, got int"),
        ({"prompt": "   ", "answer": 1}, "empty prompt"),
        ({"prompt": [], "answer": 1}, "empty prompt"),
        ({"prompt": "a", "answer": [1]}, "answer column 'answer' must be a scalar, got list"),
    ],
)
def test_malformed_jsonl_row_names_file_and_line(tmp_path, bad, reason):
    p = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "answer": 1}, "", bad])
    with pytest.raises(DataError) as e:
        load_prompts(p)
    assert str(e.value).startswith(f"{p}:3: ")  # 1-based line, blank line counted
    assert reason in str(e.value)


def test_malformed_parquet_row_names_file_and_row(tmp_path):
    pq.write_table(pa.table({"prompt": ["a", "", "c"], "answer": ["1", "2", "3"]}), tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet:row 1: empty prompt"):
        load_prompts(tmp_path / "b.parquet")


def test_file_level_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: empty prompt file"):
        load_prompts(empty)
    pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"e\.parquet: empty prompt file"):
        load_prompts(tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"prompt file not found: .*missing\.jsonl"):
        load_prompts(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("prompt\n")
    with pytest.raises(DataError, match=r"x\.txt: unknown prompt file type '.txt'"):
        load_prompts(tmp_path / "x.txt")
    (tmp_path / "x.csv").write_text("prompt\n")
    with pytest.raises(DataError, match=r"x\.csv: empty prompt file"):
        load_prompts(tmp_path / "x.csv")
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"prompt": "a", "answer": 1, "id": 3}, {"prompt": "b", "answer": 2, "id": 3}])
    with pytest.raises(DataError, match="prompt key '3' appears twice"):
        load_prompts(dup)


def test_rows_from_dicts():
    rows = rows_from_dicts([{"prompt": "1+1=", "answer": "2", "task": "add"}], source="add2")
    assert rows == [PromptRow("1+1=", "2", {"task": "add"}, "add2:0")]
    with pytest.raises(DataError, match="add2:row 0: missing prompt"):
        rows_from_dicts([{"answer": 1}], source="add2")


# --- sampler -------------------------------------------------------------------------------------


def make_rows(n: int) -> list[PromptRow]:
    return [PromptRow(f"p{i}", str(i), {}, f"k{i}") for i in range(n)]


def keys(batch: list[PromptRow]) -> list[str]:
    return [r.key for r in batch]


def test_sampler_deterministic_and_covers_each_epoch():
    rows = make_rows(10)
    a = PromptSampler(rows, 3, seed=1)
    b = PromptSampler(rows, 3, seed=1)
    seq_a = [keys(a.next_batch()) for _ in range(9)]
    assert seq_a == [keys(b.next_batch()) for _ in range(9)]
    epoch0 = sum(seq_a[:3], [])  # 3 full batches, the last row of the epoch is dropped
    assert len(set(epoch0)) == 9 and a.epoch == 2
    assert sum(seq_a[3:6], []) != epoch0  # a new permutation per epoch
    other = PromptSampler(rows, 3, seed=2)
    assert [keys(other.next_batch()) for _ in range(3)] != seq_a[:3]
    plain = PromptSampler(rows, 4, seed=0, shuffle=False, drop_last=False)
    assert [keys(plain.next_batch()) for _ in range(4)] == [
        ["k0", "k1", "k2", "k3"], ["k4", "k5", "k6", "k7"], ["k8", "k9"], ["k0", "k1", "k2", "k3"]
    ]
    assert len(PromptSampler(rows, 3, 0)) == 3 and len(plain) == 3


def test_take_crosses_epochs():
    rows = make_rows(5)
    s = PromptSampler(rows, 2, seed=0, shuffle=False)
    assert keys(s.take(7)) == ["k0", "k1", "k2", "k3", "k4", "k0", "k1"]
    assert s.epoch == 1 and s.state_dict() == {"epoch": 1, "index": 2, "seed": 0}
    shuffled = PromptSampler(rows, 2, seed=3)
    got = keys(shuffled.take(10))
    assert sorted(got[:5]) == sorted(got[5:]) == [f"k{i}" for i in range(5)]


def _run(sampler: PromptSampler, ops: list) -> list[list[str]]:
    return [keys(sampler.next_batch() if op == "b" else sampler.take(op)) for op in ops]


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("stop", [1, 2, 3, 4, 5, 7])  # mid-epoch and exactly at epoch boundaries
def test_resume_equals_uninterrupted(drop_last, stop):
    rows = make_rows(9)
    ops = ["b", "b", "b", 4, "b", "b", 2, "b", "b", "b", 5, "b"]
    full = _run(PromptSampler(rows, 3, seed=7, drop_last=drop_last), ops)
    first = PromptSampler(rows, 3, seed=7, drop_last=drop_last)
    head = _run(first, ops[:stop])
    state = json.loads(json.dumps(first.state_dict()))  # survives a checkpoint round trip
    resumed = PromptSampler(rows, 3, seed=999, drop_last=drop_last)  # the checkpoint's seed wins
    resumed.load_state_dict(state)
    assert head + _run(resumed, ops[stop:]) == full


def test_resume_at_exact_epoch_boundary_neither_skips_nor_replays():
    rows = make_rows(6)
    s = PromptSampler(rows, 3, seed=0)
    epoch0 = keys(s.next_batch()) + keys(s.next_batch())
    assert s.state_dict() == {"epoch": 0, "index": 6, "seed": 0}
    r = PromptSampler(rows, 3, seed=0)
    r.load_state_dict(s.state_dict())
    epoch1 = keys(r.next_batch()) + keys(r.next_batch())
    assert sorted(epoch1) == sorted(epoch0) and r.epoch == 1  # one whole new epoch, no row twice
    assert epoch1 == keys(s.next_batch()) + keys(s.next_batch())


def test_sampler_errors():
    with pytest.raises(DataError, match="larger than the dataset"):
        PromptSampler(make_rows(2), 3, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        PromptSampler(make_rows(2), 1, seed=0).load_state_dict({"epoch": 0, "index": 5, "seed": 0})


# --- rendering -----------------------------------------------------------------------------------


class _TemplateTok:
    chat_template = "{{ stuff }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "|".join(m["content"] for m in messages) + "|<gen>"


class _PlainTok:
    chat_template = None


def test_render_prompt():
    assert render_prompt("1+1=", _TemplateTok()) == "1+1="
    assert render_prompt(CHAT, _TemplateTok()) == "Be brief.|2+2?|<gen>"
    assert render_prompt(CHAT, _PlainTok()) == "system: Be brief.\nuser: 2+2?\nassistant: "
    assert render_prompt(CHAT, None) == "system: Be brief.\nuser: 2+2?\nassistant: "



def test_prompts_from_csv_and_a_hugging_face_dataset_directory(tmp_path):
    """The RL prompts load from the same sources as SFT data: a CSV file and a save_to_disk directory,
    every other column reaching the rewards; a malformed row is named by its dataset index."""
    import datasets

    rows = [{"prompt": "1+1=", "answer": "2", "level": 1}, {"prompt": "2+2=", "answer": "4", "level": 2}]
    (tmp_path / "p.csv").write_text("prompt,answer,level\n1+1=,2,1\n2+2=,4,2\n")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for src in ("p.csv", "saved"):
        got = load_prompts(tmp_path / src)
        assert [(r.prompt, r.answer, r.columns["level"]) for r in got] == [("1+1=", "2", 1), ("2+2=", "4", 2)], src
    datasets.Dataset.from_list([{"prompt": "1+1=", "answer": "2"}, {"prompt": None, "answer": "4"}]).save_to_disk(
        str(tmp_path / "bad"))
    with pytest.raises(DataError, match=r"bad\[1\]"):
        load_prompts(tmp_path / "bad")
