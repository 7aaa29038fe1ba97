"""Tests for rltrain.config.loader on a small example schema (not the trainer's real one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pytest

from rltrain.config.loader import (
    ConfigError,
    check,
    from_dict,
    load_config,
    parse_overrides,
    set_dotted,
    to_dict,
)


@dataclass
class Clip:
    low: float = 0.2
    high: float = 0.28

    def validate(self) -> None:
        check(self.low > 0, "optim.clip.low", "must be > 0")


@dataclass
class Optim:
    lr: float = 1e-4
    kind: Literal["adam", "sgd"] = "adam"
    stage: Literal[0, 1, 2, 3] = 0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    clip: Clip = field(default_factory=Clip)

    def validate(self) -> None:
        check(self.lr > 0, "optim.lr", "must be > 0")


@dataclass
class Fn:
    name: str = "exact"
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    steps: int = 10
    name: Optional[str] = None
    tag: str | None = None
    wandb: bool = True
    extra: Any = None


@dataclass
class Cfg:
    optim: Optim = field(default_factory=Optim)
    run: Run = field(default_factory=Run)
    fns: list[Fn] = field(default_factory=lambda: [Fn()])


@dataclass
class Needs:
    path: str
    n: int = 1


# --- from_dict / to_dict ------------------------------------------------------------------------


def test_defaults_and_nested_values():
    cfg = from_dict(Cfg, {"optim": {"lr": 3, "clip": {"high": 1}}, "run": {"name": "x"}})
    assert cfg.optim.lr == 3.0 and isinstance(cfg.optim.lr, float)  # int accepted for float
    assert cfg.optim.clip == Clip(low=0.2, high=1.0)
    assert cfg.run == Run(name="x")
    assert cfg.fns == [Fn()]


def test_round_trip():
    cfg = from_dict(
        Cfg,
        {
            "optim": {"kind": "sgd", "stage": 3, "betas": [0.5, 0.6]},
            "run": {"tag": "t", "wandb": False, "extra": {"a": [1, 2]}},
            "fns": [{"name": "a", "params": {"k": 1}}, {"weight": 2}],
        },
    )
    d = to_dict(cfg)
    assert d["fns"][1] == {"name": "exact", "weight": 2.0, "params": {}}
    assert from_dict(Cfg, d) == cfg


def test_unknown_nested_key_names_full_key_and_suggests():
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, {"optim": {"clip": {"hihg": 1.0}}})
    msg = str(e.value)
    assert "optim.clip.hihg" in msg
    assert "did you mean 'optim.clip.high'" in msg
    assert "low, high" in msg  # allowed keys listed


def test_unknown_top_level_key_without_close_match():
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'; allowed keys at the top level: optim, run, fns"):
        from_dict(Cfg, {"zzz": 1})


def test_unknown_key_in_list_item():
    with pytest.raises(ConfigError, match=r"fns\[1\]\.wieght.*did you mean 'fns\[1\]\.weight'"):
        from_dict(Cfg, {"fns": [{}, {"wieght": 1}]})


@pytest.mark.parametrize(
    "data, key, expected",
    [
        ({"run": {"steps": "ten"}}, "run.steps", "expected int, got str 'ten'"),
        ({"run": {"steps": 1.5}}, "run.steps", "expected int"),
        ({"run": {"steps": True}}, "run.steps", "expected int"),
        ({"run": {"wandb": 1}}, "run.wandb", "expected bool, got int 1"),
        ({"run": {"wandb": "yes"}}, "run.wandb", "expected bool"),
        ({"optim": {"lr": "fast"}}, "optim.lr", "expected float"),
        ({"optim": {"lr": None}}, "optim.lr", "expected float, got NoneType None"),
        ({"optim": {"betas": 0.9}}, "optim.betas", "expected list[float]"),
        ({"optim": {"betas": [0.9, "x"]}}, "optim.betas[1]", "expected float"),
        ({"optim": "adam"}, "optim", "expected Optim"),
        ({"run": {"name": ["a"]}}, "run.name", "expected"),
        ({"fns": [{"params": []}]}, "fns[0].params", "expected dict[str, Any]"),
    ],
)
def test_wrong_type_names_key_expected_and_got(data, key, expected):
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, data)
    assert str(e.value).startswith(f"{key}: ")
    assert expected in str(e.value)


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"optim.kind: invalid value 'adamw'; allowed values: 'adam', 'sgd'"):
        from_dict(Cfg, {"optim": {"kind": "adamw"}})
    with pytest.raises(ConfigError, match=r"optim.stage: invalid value '2'; allowed values: 0, 1, 2, 3"):
        from_dict(Cfg, {"optim": {"stage": "2"}})
    with pytest.raises(ConfigError, match="optim.stage"):
        from_dict(Cfg, {"optim": {"stage": True}})  # True == 1 but is not the literal 1


def test_bool_from_cli_strings_and_optional_none():
    cfg = from_dict(Cfg, {"run": {"wandb": "False", "name": None, "tag": None}})
    assert cfg.run.wandb is False and cfg.run.name is None


def test_validate_runs_and_names_key():
    with pytest.raises(ConfigError, match=r"^optim.lr: must be > 0$"):
        from_dict(Cfg, {"optim": {"lr": 0}})
    with pytest.raises(ConfigError, match=r"^optim.clip.low: must be > 0$"):
        from_dict(Cfg, {"optim": {"clip": {"low": -1}}})


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'path'"):
        from_dict(Needs, {})
    assert from_dict(Needs, {"path": "p"}) == Needs("p")


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


# --- set_dotted / parse_overrides ----------------------------------------------------------------


def test_set_dotted():
    d: dict = {"a": {"x": 1}, "l": [{"w": 1}]}
    set_dotted(d, "a.b.c", 2)
    set_dotted(d, "l.0.w", 3)
    assert d == {"a": {"x": 1, "b": {"c": 2}}, "l": [{"w": 3}]}
    with pytest.raises(ConfigError, match="'a.x' is a int"):
        set_dotted(d, "a.x.y", 1)
    with pytest.raises(ConfigError, match="index 5 out of range"):
        set_dotted(d, "l.5.w", 1)


def test_parse_overrides_all_forms():
    out = parse_overrides(
        ["--optim.lr=1e-5", "--run.steps", "20", "optim.clip.high=1.28", "--optim.betas=[0.9,0.95]",
         "--run.name=null", "--run.tag=off", "--run.wandb=false", "--optim.kind", "sgd", "--x=-1"]
    )
    assert out == {
        "optim": {"lr": 1e-5, "clip": {"high": 1.28}, "betas": [0.9, 0.95], "kind": "sgd"},
        "run": {"steps": 20, "name": None, "tag": "off", "wandb": False},
        "x": -1,
    }
    assert isinstance(out["optim"]["lr"], float)
    assert parse_overrides(["a=1E3", "b=.5", "c=-2.5e-3", "d=1_000", "e=abc"]) == {
        "a": 1000.0, "b": 0.5, "c": -0.0025, "d": 1000, "e": "abc"
    }


def test_parse_overrides_rejects_non_overrides():
    with pytest.raises(ConfigError, match=r"not a config override: 'train', '-v'"):
        parse_overrides(["train", "--a=1", "-v"])
    with pytest.raises(ConfigError, match="missing value for '--a.b'"):
        parse_overrides(["--a.b", "--c=1"])
    with pytest.raises(ConfigError, match="missing value"):
        parse_overrides(["--a.b"])


# --- load_config ---------------------------------------------------------------------------------


def test_load_config_precedence(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 1e-5\n  clip: {high: 0.3}\nrun:\n  steps: 5\n  tag: yes\n")
    cfg = load_config(Cfg, str(p), ["--run.steps=7", "fns.0.weight=0.5"])
    assert cfg.optim.lr == 1e-5  # YAML's 1e-5 is a float, not a string
    assert cfg.optim.clip == Clip(0.2, 0.3)  # YAML merged into defaults, not replacing the section
    assert cfg.run.steps == 7  # override beats YAML
    assert cfg.run.tag == "yes"  # YAML 1.2 booleans only
    assert cfg.fns == [Fn(weight=0.5)]
    assert load_config(Cfg, None, {"run.steps": 3, "optim": {"kind": "sgd"}}).run.steps == 3
    assert load_config(Cfg, None, []) == Cfg()


def test_load_config_any_and_dict_fields_accept_new_keys():
    cfg = load_config(Cfg, None, ["--fns.0.params.k=2", "--run.extra.a.b=1"])
    assert cfg.fns[0].params == {"k": 2} and cfg.run.extra == {"a": {"b": 1}}


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.lrr' \(did you mean 'optim\.lr'\?\)"):
        load_config(Cfg, None, ["--optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"^run\.steps: expected int, got str 'many'"):
        load_config(Cfg, None, ["run.steps=many"])
    with pytest.raises(ConfigError, match=r"optim\.kind: invalid value 'adamw'; allowed values"):
        load_config(Cfg, None, ["--optim.kind", "adamw"])
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a mapping"):
        load_config(Cfg, str(bad), [])
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(Cfg, str(tmp_path / "nope.yaml"), [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(Cfg, str(broken), [])
    typo = tmp_path / "typo.yaml"
    typo.write_text("run:\n  stpes: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'run\.stpes' \(did you mean 'run\.steps'\?\)"):
        load_config(Cfg, str(typo), [])


def test_load_config_empty_yaml_and_required_fields(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert load_config(Cfg, str(p), []) == Cfg()
    assert load_config(Needs, None, ["path=/x"]) == Needs("/x")
    with pytest.raises(ConfigError, match="missing required key 'path'"):
        load_config(Needs, None, [])
