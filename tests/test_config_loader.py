"""Tests for rltrain.config.loader on a small example pydantic schema (not the trainer's real one)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest
from pydantic import Field, field_validator

from rltrain.config.loader import (
    ConfigError,
    Section,
    load_config,
    parse_overrides,
    set_dotted,
    to_dict,
    validate,
)


class Clip(Section):
    low: float = Field(0.2, gt=0)
    high: float = Field(0.28, gt=0, le=10)


class Optim(Section):
    lr: float = Field(1e-4, gt=0)
    kind: Literal["adam", "sgd"] = "adam"
    stage: Literal[0, 1, 2, 3] = 0
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999])
    clip: Clip = Field(default_factory=Clip)

    @field_validator("betas")
    @classmethod
    def _two(cls, betas: list[float]) -> list[float]:
        if len(betas) != 2:
            raise ValueError("must be a list of two floats")
        return betas


class Fn(Section):
    name: str = "exact"
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)


class Run(Section):
    steps: int = Field(10, ge=0)
    name: Optional[str] = None
    tag: str | None = None
    wandb: bool = True
    extra: Any = None


class Cfg(Section):
    optim: Optim = Field(default_factory=Optim)
    run: Run = Field(default_factory=Run)
    fns: list[Fn] = Field(default_factory=lambda: [Fn()])


class Needs(Section):
    path: str
    n: int = 1


RENAMED = {"optim.clip_high": "optim.clip.high", "run.wandb_on": "run.wandb"}


# --- validation / to_dict -----------------------------------------------------------------------


def test_defaults_and_nested_values():
    cfg = validate(Cfg, {"optim": {"lr": 3, "clip": {"high": 1}}, "run": {"name": "x"}})
    assert cfg.optim.lr == 3.0 and isinstance(cfg.optim.lr, float)  # int accepted for float
    assert cfg.optim.clip == Clip(low=0.2, high=1.0)
    assert cfg.run == Run(name="x")
    assert cfg.fns == [Fn()]


def test_round_trip():
    cfg = validate(Cfg, {
        "optim": {"kind": "sgd", "stage": 3, "betas": [0.5, 0.6]},
        "run": {"tag": "t", "wandb": False, "extra": {"a": [1, 2]}},
        "fns": [{"name": "a", "params": {"k": 1}}, {"weight": 2}],
    })
    d = to_dict(cfg)
    assert d["fns"][1] == {"name": "exact", "weight": 2.0, "params": {}}
    assert type(d["optim"]) is dict and type(d["fns"]) is list
    assert validate(Cfg, d) == cfg
    assert load_config(Cfg, None, d) == cfg


def test_unknown_nested_key_names_full_key_and_suggests():
    with pytest.raises(ConfigError) as e:
        validate(Cfg, {"optim": {"clip": {"hihg": 1.0}}})
    msg = str(e.value)
    assert msg.startswith("optim.clip.hihg: unknown key; allowed: low, high")
    assert msg.endswith("did you mean 'optim.clip.high'?")


def test_unknown_top_level_key_without_close_match():
    with pytest.raises(ConfigError, match=r"^zzz: unknown key; allowed: optim, run, fns$"):
        validate(Cfg, {"zzz": 1})


def test_unknown_key_in_list_item():
    with pytest.raises(ConfigError, match=r"^fns\[1\]\.wieght: unknown key.*did you mean 'fns\[1\]\.weight'"):
        validate(Cfg, {"fns": [{}, {"wieght": 1}]})


@pytest.mark.parametrize("data, key, expected", [
    ({"run": {"steps": "ten"}}, "run.steps", "expected int, got str 'ten'"),
    ({"run": {"steps": 1.5}}, "run.steps", "expected int, got float 1.5"),
    ({"run": {"steps": True}}, "run.steps", "expected int, got bool True"),
    ({"run": {"wandb": 1}}, "run.wandb", "expected bool, got int 1"),
    ({"run": {"wandb": "yes"}}, "run.wandb", "expected bool"),
    ({"optim": {"lr": "fast"}}, "optim.lr", "expected float, got str 'fast'"),
    ({"optim": {"lr": "1e-4"}}, "optim.lr", "expected float"),  # strings are not numbers
    ({"optim": {"lr": None}}, "optim.lr", "expected float, got NoneType None"),
    ({"optim": {"betas": 0.9}}, "optim.betas", "expected list[float]"),
    ({"optim": {"betas": [0.9, "x"]}}, "optim.betas[1]", "expected float"),
    ({"optim": "adam"}, "optim", "expected a mapping, got str 'adam'"),
    ({"run": {"name": ["a"]}}, "run.name", "expected str or null, got list"),
    ({"fns": [{"params": []}]}, "fns[0].params", "expected dict[str, Any]"),
    ({"fns": {"name": "a"}}, "fns", "expected list"),
])
def test_wrong_type_names_key_expected_and_got(data, key, expected):
    with pytest.raises(ConfigError) as e:
        validate(Cfg, data)
    assert str(e.value).startswith(f"{key}: ")
    assert expected in str(e.value)


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"^optim\.kind: must be one of adam, sgd, got 'adamw'$"):
        validate(Cfg, {"optim": {"kind": "adamw"}})
    with pytest.raises(ConfigError, match=r"^optim\.stage: must be one of 0, 1, 2, 3, got '2'$"):
        validate(Cfg, {"optim": {"stage": "2"}})
    with pytest.raises(ConfigError, match=r"^optim\.stage: must be one of 0, 1, 2, 3, got True$"):
        validate(Cfg, {"optim": {"stage": True}})  # True == 1 but is not the choice 1


def test_bool_parsing_and_optional_none():
    cfg = load_config(Cfg, None, ["run.wandb=False", "run.name=null", "run.tag=~"])
    assert cfg.run.wandb is False and cfg.run.name is None and cfg.run.tag is None
    assert load_config(Cfg, None, ["run.wandb=TRUE"]).run.wandb is True
    for text in ("yes", "on", "1"):  # only true/false are booleans
        with pytest.raises(ConfigError, match=r"^run\.wandb: expected bool"):
            load_config(Cfg, None, [f"run.wandb={text}"])


def test_numbers_accepted_as_text():
    assert load_config(Cfg, None, ["run.name=2024", "fns.0.name=1.5"]).run.name == "2024"


def test_constraint_violations_name_the_key():
    with pytest.raises(ConfigError, match=r"^optim\.lr: must be > 0, got 0$"):
        validate(Cfg, {"optim": {"lr": 0}})
    with pytest.raises(ConfigError, match=r"^optim\.clip\.low: must be > 0, got -1$"):
        validate(Cfg, {"optim": {"clip": {"low": -1}}})
    with pytest.raises(ConfigError, match=r"^optim\.clip\.high: must be in \(0, 10\], got 11$"):
        validate(Cfg, {"optim": {"clip": {"high": 11}}})
    with pytest.raises(ConfigError, match=r"^run\.steps: must be >= 0, got -3$"):
        validate(Cfg, {"run": {"steps": -3}})
    with pytest.raises(ConfigError, match=r"^optim\.betas: must be a list of two floats$"):
        validate(Cfg, {"optim": {"betas": [0.9]}})
    with pytest.raises(ConfigError, match=r"^optim\.lr: must be a finite number, got nan$"):
        validate(Cfg, {"optim": {"lr": float("nan")}})


def test_all_errors_reported_one_per_line():
    with pytest.raises(ConfigError) as e:
        validate(Cfg, {"optim": {"lr": 0, "kind": "x"}, "run": {"stpes": 1}})
    lines = str(e.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["optim.lr", "optim.kind", "run.stpes"]


def test_assignment_is_validated():
    cfg = Cfg()
    cfg.run.steps = 3
    with pytest.raises(ValueError):
        cfg.run.steps = "many"  # type: ignore[assignment]


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"^path: missing required key$"):
        validate(Needs, {})
    assert load_config(Needs, None, ["path=/x"]) == Needs(path="/x")
    with pytest.raises(ConfigError, match="path: missing required key"):
        load_config(Needs, None, [])


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


# --- set_dotted / parse_overrides ----------------------------------------------------------------


def test_set_dotted():
    d: dict = {"a": {"x": 1}, "l": [{"w": 1}, {"w": 2}]}
    set_dotted(d, "a.b.c", 2)
    set_dotted(d, "l.0.w", 3)
    set_dotted(d, "l[1].w", 4)
    assert d == {"a": {"x": 1, "b": {"c": 2}}, "l": [{"w": 3}, {"w": 4}]}
    with pytest.raises(ConfigError, match="'a.x' is a int"):
        set_dotted(d, "a.x.y", 1)
    with pytest.raises(ConfigError, match="index 5 out of range"):
        set_dotted(d, "l.5.w", 1)
    with pytest.raises(ConfigError, match="numeric index"):
        set_dotted(d, "l.w", 1)


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
    with pytest.raises(ConfigError, match=r"not a config override: '--a..b=1'"):
        parse_overrides(["--a..b=1"])
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
    assert cfg.optim.clip == Clip(low=0.2, high=0.3)  # YAML merged into defaults, not replacing the section
    assert cfg.run.steps == 7  # override beats YAML
    assert cfg.run.tag == "yes"  # YAML 1.2 booleans only
    assert cfg.fns == [Fn(weight=0.5)]
    assert load_config(Cfg, str(p), {"run.steps": 3, "optim": {"kind": "sgd"}}).run.steps == 3
    assert load_config(Cfg, None, []) == Cfg() == load_config(Cfg, None, None)


def test_load_config_dict_and_any_fields_accept_any_keys():
    cfg = load_config(Cfg, None, ["--fns.0.params.k=2", "--run.extra.a.b=1", "fns[0].params.z=[1]"])
    assert cfg.fns[0].params == {"k": 2, "z": [1]} and cfg.run.extra == {"a": {"b": 1}}


def test_load_config_renamed_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"^optim\.clip_high was renamed: use optim\.clip\.high$"):
        load_config(Cfg, None, ["optim.clip_high=1"], renamed=RENAMED)
    p = tmp_path / "old.yaml"
    p.write_text("run:\n  wandb_on: false\n")
    with pytest.raises(ConfigError, match=r"^run\.wandb_on was renamed: use run\.wandb$"):
        load_config(Cfg, str(p), [], renamed=RENAMED)
    with pytest.raises(ConfigError, match=r"^run\.wandb_on: unknown key"):  # without the table
        load_config(Cfg, str(p), [])


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^optim\.lrr: unknown key; .*did you mean 'optim\.lr'\?"):
        load_config(Cfg, None, ["--optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"^run\.steps: expected int, got str 'many'"):
        load_config(Cfg, None, ["run.steps=many"])
    with pytest.raises(ConfigError, match=r"^optim\.kind: must be one of adam, sgd"):
        load_config(Cfg, None, ["--optim.kind", "adamw"])
    with pytest.raises(ConfigError, match=r"^run\.steps: expected int, got dict"):
        load_config(Cfg, None, ["run.steps.x=1"])
    with pytest.raises(TypeError):
        load_config(Cfg, None, "run.steps=1")  # type: ignore[arg-type]
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a mapping"):
        load_config(Cfg, str(bad), [])
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.yaml"):
        load_config(Cfg, str(tmp_path / "nope.yaml"), [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(Cfg, str(broken), [])
    typo = tmp_path / "typo.yaml"
    typo.write_text("run:\n  stpes: 3\n")
    with pytest.raises(ConfigError, match=r"^run\.stpes: unknown key; .*did you mean 'run\.steps'\?"):
        load_config(Cfg, str(typo), [])


def test_load_config_empty_yaml(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert load_config(Cfg, str(p), []) == Cfg()
    p.write_text("# only a comment\n")
    assert load_config(Cfg, str(p), ["run.steps=2"]) == Cfg(run=Run(steps=2))
