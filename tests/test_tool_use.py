"""Tool use without Ray: the code interpreter's turns (toy and chat tool-call forms), its notebook-cell
programs and sandboxed runs (output, errors, a hang), scoring; the chat-template check firing when a
template would re-render a conversation differently; the calc task's chat prompts."""

from __future__ import annotations

import pytest

from rltrain.data import PromptRow
from rltrain.driver.flow.chat_check import conversation, template_mismatch
from rltrain.envs.base import Turn
from rltrain.envs.code_interpreter import CodeInterpreterEnv, cell_program, parse_code_turn


def test_turns_parse_in_the_toy_and_the_chat_forms():
    assert parse_code_turn("py 47*83") == ("code", "47*83")
    assert parse_code_turn("a 3901") == ("answer", "3901")
    call = '<tool_call>{"name": "python", "arguments": {"code": "print(2**10)"}}</tool_call>'
    assert parse_code_turn("let me compute " + call) == ("code", "print(2**10)")
    assert parse_code_turn("so it is \\boxed{3901}.") == ("answer", "3901")
    assert parse_code_turn('<tool_call>{"name": "search", "arguments": {}}</tool_call>') is None  # another tool
    assert parse_code_turn("<tool_call>{not json}</tool_call>") is None and parse_code_turn("hmm") is None


def test_a_cell_prints_its_last_expression_unless_none():
    assert cell_program("x = 3\nx * 2") == "x = 3\n__cell_value = x * 2\nif __cell_value is not None:\n    print(__cell_value)"
    assert cell_program("print(1") is None


def test_the_interpreter_runs_code_in_the_sandbox_and_scores_the_answer():
    env = CodeInterpreterEnv(timeout_s=1.0)
    env.reset(PromptRow("c 47*83?", "3901", {}, "k"))
    obs = [env.step([Turn("model", t)]).observation for t in ("py 47*83", "py 1/0", "py 1+", "nonsense",
                                                              "py while True: pass")]
    assert obs == ["=3901\n", "!ZeroDivisionError\n", "!SyntaxError\n", "err\n", "!Timeout\n"]
    assert (env.tool_calls, env.tool_errors) == (4, 3)
    done = env.step([Turn("model", "a 3901")])
    assert done.done and done.observation is None
    assert env.score([Turn("model", "py 47*83"), Turn("observation", "=3901\n"), Turn("model", "a 3901")]) == 1.0
    assert env.score([Turn("model", "a 3900")]) == 0.0 and env.score([Turn("model", "py 1")]) == 0.0
    chat = CodeInterpreterEnv(answer_style="boxed")
    chat.reset(PromptRow("q", "1024", {}, "k"))
    assert chat.step([Turn("model", '<tool_call>{"name": "python", "arguments": {"code": "2**10"}}</tool_call>')]
                     ).observation == "1024"
    with pytest.raises(ValueError, match="answer_style"):
        CodeInterpreterEnv(answer_style="latex")


def test_the_template_check_fires_where_a_re_render_would_differ(default_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model)
    stable = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
              "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    prompt = [{"role": "user", "content": "c 47*83?"}]
    history = [Turn("model", " py 47*83 "), Turn("observation", "=3901"), Turn("model", "a 3901")]
    tok.chat_template = stable
    ids = tok(tok.apply_chat_template(conversation(prompt, history), tokenize=False),
              add_special_tokens=False)["input_ids"]
    assert template_mismatch(tok, prompt, history, ids) is None
    assert template_mismatch(tok, prompt, history, ids[:-3]) is None  # a shorter episode (its end not written)
    # a template that strips the assistant's whitespace (as some drop reasoning) re-renders other tokens
    tok.chat_template = stable.replace("{{ m['content'] }}", "{{ m['content'] | trim }}")
    head = len(tok("<|user|>c 47*83?<|end|><|assistant|>", add_special_tokens=False)["input_ids"])
    assert template_mismatch(tok, prompt, history, ids) == head  # the leading space of " py 47*83 "


def test_calc_chat_prompts_describe_the_tool():
    from rltrain.data.tool_tasks import TOOL_SYSTEM, make_calc_chat_rows

    row = make_calc_chat_rows("train", 1)[0]
    assert row["prompt"][0] == {"role": "system", "content": TOOL_SYSTEM}
    assert row["prompt"][1]["content"] == f"What is {row['a']} * {row['b']}?" and row["answer"] == str(row["a"] * row["b"])
    call = TOOL_SYSTEM.splitlines()[1]
    assert parse_code_turn(call) == ("code", "print(12*34)")  # the described form is the parsed one
