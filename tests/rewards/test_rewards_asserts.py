"""The trusted side of assert-style code tests: planning, plain data, and the comparison semantics."""

from __future__ import annotations

import time

import pytest

from rewards._asserts import judge, plan_snippet
from rewards._plain import NotPlain, from_plain, to_plain
from rewards._trusted_eval import ProbeFailed


@pytest.mark.parametrize("value", [None, True, 0, -3, 2 ** 100, 1.5, float("inf"), "é", b"\x00\xff", 1 + 2j,
                                   [1, [2]], (1, "a"), {1, 2}, frozenset({3}), {(1, 2): [None], "k": {"n": 1.0}}])
def test_plain_data_round_trips_with_its_types(value):
    back = from_plain(to_plain(value))
    assert back == value and type(back) is type(value)


class _Int(int):
    pass


class _Str(str):
    pass


class _List(list):
    pass


def _cycle():
    xs = []
    xs.append(xs)
    return xs


@pytest.mark.parametrize("value", [_Int(3), _Str("a"), _List([1]), object(), [1, object()], {1: object()}, _cycle(),
                                   range(3), iter([1])])
def test_only_plain_data_crosses(value):
    with pytest.raises(NotPlain):
        to_plain(value)


def test_numpy_values_become_python_values():
    np = pytest.importorskip("numpy")
    assert from_plain(to_plain(np.int64(3))) == 3 and type(from_plain(to_plain(np.float32(0.5)))) is float
    assert from_plain(to_plain(np.arange(3).reshape(1, 3))) == [[0, 1, 2]]


@pytest.mark.parametrize("data", [[1, 2], {"x": 1}, {"l": 1}, {"l": [1], "t": [2]}, {"s": [{"l": []}]},
                                  {"d": [[1]]}, {"c": ["a", 1]}, {"b": "zz"}])
def test_the_trusted_side_decodes_only_what_the_encoder_writes(data):
    with pytest.raises(ValueError):
        from_plain(data)


@pytest.mark.parametrize("source,probes", [
    ("assert add(2, 3) == 5", ["add(2, 3)"]),
    ("assert 5 == add(2, 3)", ["add(2, 3)"]),
    ("assert abs(area(2) - 12.566) < 1e-3", ["area(2)"]),
    ("import math\nassert math.isclose(f(2), 1.41, rel_tol=1e-3)", ["f(2)"]),
    ("assert sorted(f([3, 1])) == sorted([1, 3])", ["f([3, 1])"]),
    ("assert f(3) is None and not g(4)", ["f(3)", "g(4)"]),
    ("assert 0 <= f(5) < 10, 'expected a digit'", ["f(5)"]),
    ("assert Solution().two_sum([2, 7], 9) == [0, 1]", ["Solution().two_sum([2, 7], 9)"]),
    ("assert f('abc')[::-1] == 'cba'", ["f('abc')"]),
    ("assert f(2) == float('inf')", ["f(2)"]),
    ("def check(candidate):\n    assert candidate(1) == 2\ncheck(inc)", ["inc(1)"]),
])
def test_checkable_forms_send_only_the_program_side(source, probes):
    plan = plan_snippet(source)
    assert plan is not None and list(plan.probes) == probes


@pytest.mark.parametrize("source", [
    "assert f(1) == f(2)",                          # two values of the program's compared
    "x = 1\nassert f(x) == 2",                      # an assignment
    "assert all(f(i) == i for i in range(3))",      # a generator: the expected side would be in the probe
    "assert check(f(5), 120)",                      # a call with a computed argument
    "assert f(3) is 3",                             # identity with a non-singleton
    "def helper(x):\n    return x\nassert helper(3)",  # a helper the asserts call
    "for i in range(3):\n    assert f(i) == i",
    "assert f(1/0) == 1",                           # a constant that raises: Python's own behaviour is kept
    "f(1)",                                         # no assert at all
    "assert f(",                                    # not Python
])
def test_other_forms_are_untrusted(source):
    assert plan_snippet(source) is None


def test_the_expected_side_never_reaches_the_sandbox():
    plan = plan_snippet("import math\nassert add(2, 3) == 48611 and abs(sq(2) - 3.16227) < 1e-5")
    assert "48611" not in repr(plan.setup + plan.probes) and "3.16227" not in repr(plan.setup + plan.probes)


@pytest.mark.parametrize("source,values,want", [
    ("assert f() == 1", [1.0], True),               # Python's ==: 1 == 1.0
    ("assert f() == 1", [True], True),              # and 1 == True
    ("assert f() == [1]", [(1,)], False),           # a tuple is not a list
    ("assert f() == float('nan')", [float("nan")], False),  # NaN equals nothing
    ("assert f() != 5", [float("nan")], True),
    ("assert f() is True", [1], False),
    ("assert f()", [[]], False),
    ("assert not f()", [""], True),
    ("assert f() == 1 or g() == 2", [1, ProbeFailed("raised")], True),   # short-circuit, as Python does
    ("assert f() == 1 and g() == 2", [1, ProbeFailed("raised")], False),
    ("assert f() < 'a'", [1], False),               # TypeError: the check fails
    ("assert abs(f() - 2.5) < 1e-6", [2.5000001], True),
    ("assert {1: f()} == {1: [2]}", [[2]], True),
])
def test_trusted_comparison_semantics(source, values, want):
    assert judge(plan_snippet(source), values) is want


@pytest.mark.parametrize("source,value", [
    ("assert 2 ** f() == 4", 10 ** 9),              # a power the program's value would make huge
    ("assert [0] * f() == []", 10 ** 12),           # a repetition
    ("assert list(range(f())) == []", 10 ** 12),    # a range
    ("assert str(f()) == '1'", 10 ** 5000),         # digits past Python's limit
], ids=["power", "repetition", "range", "digits"])
def test_a_value_cannot_make_the_trusted_side_hang(source, value):
    t0 = time.monotonic()
    assert judge(plan_snippet(source), [value]) is False
    assert time.monotonic() - t0 < 1.0
