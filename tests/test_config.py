"""The run config fails at start-up, naming the key, for unknown keys and bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rltrain.config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_overrides_in_all_forms(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("learner:\n  lr: 2.0e-4\nalgorithm:\n  preset: dapo+forking\n")
    cfg = load(str(yml), ["--learner.lr=5e-5", "--rollout.n_samples", "4", "trainer.steps=3"])
    assert cfg.learner.lr == 5e-5 and cfg.rollout.n_samples == 4 and cfg.trainer.steps == 3
    assert cfg.algorithm.spec() == {"preset": "dapo+forking"}


@pytest.mark.parametrize("override,needle", [
    ("trainer.stepz=3", "trainer.stepz"),
    ("learner.lr=fast", "learner.lr"),
    ("learner.zero_stage=4", "learner.zero_stage"),
    ("rollout.engine=tgi", "rollout.engine"),
    ("rollout.temperature=0", "rollout.temperature"),
    ("algorithm.preset=grpoo", "grpoo"),
    ("algorithm.objective.hgih=1.3", "algorithm.objective.hgih"),
])
def test_bad_config_names_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load(None, [override])
    assert needle in str(err.value)


def test_launch_rejects_bad_key_before_starting_anything():
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), "--learner.lrr=1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "learner.lrr" in proc.stderr and "did you mean 'learner.lr'" in proc.stderr


@pytest.mark.parametrize("override,new_key", [
    ("rollout.gpu_memory_utilization=0.5", "rollout.vllm.gpu_memory_utilization"),
    ("rollout.max_model_len=1024", "rollout.vllm.max_model_len"),
    ("learner.tis_cap=2.0", "algorithm.correction.name=tis algorithm.correction.cap=<value>"),
])
def test_renamed_keys_fail_naming_the_new_key(override, new_key):
    old_key = override.split("=")[0]
    with pytest.raises(ConfigError) as err:
        load(None, [override])
    assert str(err.value) == f"{old_key} was renamed: use {new_key}"


def test_renamed_key_in_yaml_fails_too(tmp_path):
    yml = tmp_path / "old.yaml"
    yml.write_text("rollout:\n  gpu_memory_utilization: 0.5\n")
    with pytest.raises(ConfigError, match=r"^rollout\.gpu_memory_utilization was renamed: use rollout\.vllm\."):
        load(str(yml), [])


def test_engine_and_schedule_names_checked_against_registries():
    with pytest.raises(ConfigError) as err:
        load(None, ["rollout.engine=no_such_engine"])
    msg = str(err.value)
    assert msg.startswith("rollout.engine: unknown engine 'no_such_engine'") and "transformers" in msg and "vllm" in msg
    with pytest.raises(ConfigError) as err:
        load(None, {"trainer.schedule": "nope"})
    msg = str(err.value)
    assert msg.startswith("trainer.schedule: ") and "sync" in msg and "one_step_off" in msg
    assert load(None, {"trainer.schedule": "one_step_off"}).trainer.schedule == "one_step_off"


def test_engine_options():
    from rltrain.config import engine_options

    cfg = load(None, ["rollout.vllm.gpu_memory_utilization=0.5", "rollout.vllm.max_model_len=1024"])
    assert engine_options(cfg, "vllm") == {"gpu_memory_utilization": 0.5, "max_model_len": 1024, "enable_sleep_mode": False,
                                           "tensor_parallel_size": 1, "seed_requests": None}
    assert engine_options(cfg, "transformers") == {"decode": "lean"}
    with pytest.raises(ConfigError, match=r"^rollout\.vllm\.gpu_memory_utilization: must be in \(0, 1\], got 2$"):
        load(None, ["rollout.vllm.gpu_memory_utilization=2"])
    with pytest.raises(ConfigError, match=r"^rollout\.vllm\.max_model_len: must be >= 16"):
        load(None, ["rollout.vllm.max_model_len=8"])
    with pytest.raises(ConfigError, match=r"^rollout\.transformers\.x: unknown key"):
        load(None, ["rollout.transformers.x=1"])
    with pytest.raises(ConfigError, match=r"^rollout\.engine_options: only for an engine given by import path"):
        load(None, ["rollout.engine_options.x=1"])  # would be ignored by a registered engine
    custom = load(None, ["rollout.engine=mypkg.mod:MyEngine", "rollout.engine_options.beam=4"])
    assert custom.rollout.engine == "mypkg.mod:MyEngine"
    assert engine_options(custom, "mypkg.mod:MyEngine") == {"beam": 4}


def test_error_names_full_key_of_list_items():
    with pytest.raises(ConfigError, match=r"^reward\.functions\[0\]\.wieght: unknown key.*did you mean "
                                          r"'reward\.functions\[0\]\.weight'\?"):
        load(None, ["reward.functions.0.wieght=2"])
    with pytest.raises(ConfigError, match=r"^reward\.functions\[1\]\.weight: expected float, got str 'x'"):
        load(None, {"reward.functions": [{"name": "exact_match"}, {"name": "format", "weight": "x"}]})
    with pytest.raises(ConfigError, match=r"^learner\.zero_stage: must be one of 0, 1, 2, 3, got 4$"):
        load(None, ["learner.zero_stage=4"])
    with pytest.raises(ConfigError, match=r"^rollout\.temperature: must be > 0, got 0$"):
        load(None, ["rollout.temperature=0"])


def test_correction_stage_passes_through_to_algorithms():
    import algorithms

    cfg = load(None, ["model.gradient_checkpointing=true"])
    assert cfg.model.gradient_checkpointing is True and "correction" not in cfg.algorithm.spec()
    if not hasattr(algorithms, "check"):
        pytest.skip("algorithms.check (and the correction stage) not there yet")
    cfg = load(None, ["algorithm.correction.name=tis", "algorithm.correction.cap=2.0"])
    assert cfg.algorithm.spec() == {"preset": "grpo", "correction": {"name": "tis", "cap": 2.0}}


def test_to_dict_round_trips_through_load(tmp_path):
    import yaml

    from rltrain.config import to_dict

    cfg = load(None, ["learner.lr=3e-5", "rollout.vllm.max_model_len=256", "algorithm.preset=dapo",
                      "reward.functions.0.params.k=1", "trainer.run_name=2024"])
    assert cfg.trainer.run_name == "2024"
    assert load(None, to_dict(cfg)) == cfg
    yml = tmp_path / "config.yaml"  # what run_setup writes into the run directory
    yml.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    assert load(str(yml), []) == cfg


def test_missing_yaml_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nope.yaml"), [])


def test_top_p_below_one_is_refused_naming_why():
    with pytest.raises(ConfigError, match=r"^rollout\.top_p: must be 1\.0, got 0\.9: .*truncated"):
        load(None, ["rollout.top_p=0.9"])


def test_partial_rollout_budget_must_be_below_the_response_limit():
    with pytest.raises(ConfigError, match=r"rollout\.partial_tokens=8 must be below rollout\.max_new_tokens=8"):
        load(None, ["rollout.partial_tokens=8", "rollout.max_new_tokens=8"])
    assert load(None, ["rollout.partial_tokens=4", "rollout.max_new_tokens=8"]).rollout.partial_tokens == 4


def test_role_resources_name_custom_node_resources():
    from rltrain.workers.placement import actor_roles, role_resources

    cfg = load(None, {"resources.rollout": {"rollout_node": 1}, "rollout.num_workers": 2, "learner.num_ranks": 2})
    assert actor_roles(cfg, need_reference=True) == ["learner", "learner", "rollout", "rollout", "reference"]
    assert role_resources(cfg, "rollout") == {"rollout_node": 1} and role_resources(cfg, "learner") == {}
    for bad, needle in [({"resources.learner": {"GPU": 1}}, "resources.learner.GPU"),
                        ({"resources.reference": {"big_node": 0}}, "resources.reference.big_node must be > 0"),
                        ({"resources.critics": {"x": 1}}, "resources.critics")]:
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            load(None, bad)


def test_a_missing_local_model_directory_names_the_key(tmp_path):
    from rltrain.driver.run_setup import resolve_model

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match=r"model.path='.*no-such-model': no such model directory"):
        resolve_model(load(None, {"model.path": missing}))
    (tmp_path / "here").mkdir()
    with pytest.raises(ConfigError, match=r"model.path='.*here': not a Hugging Face model directory"):
        resolve_model(load(None, {"model.path": str(tmp_path / "here")}))
    (tmp_path / "here" / "config.json").write_text("{}")
    assert resolve_model(load(None, {"model.path": str(tmp_path / "here")})) == str(tmp_path / "here")
    assert resolve_model(load(None, {"model.path": "org/name"})) == "org/name"  # a hub name passes through


def test_auto_dtype_is_bfloat16_where_bf16_matrix_products_are_faster():
    from rltrain.config.hardware import fast_dtype, matmul_seconds

    amx = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    avx512_only = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n"
    no_bf16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2\n"
    faster, slower = {"bfloat16": 1.0, "float32": 2.6}, {"bfloat16": 1.8, "float32": 1.0}  # seconds
    assert fast_dtype(amx, has_gpu=False, seconds=faster) == "bfloat16"
    assert fast_dtype(avx512_only, has_gpu=False, seconds=faster) == "bfloat16"  # e.g. AMD Zen 4: 2.6x
    assert fast_dtype(avx512_only, has_gpu=False, seconds=slower) == "float32"  # a machine where bf16 was 0.55x
    assert fast_dtype(avx512_only, has_gpu=False, seconds={"bfloat16": 1.0, "float32": 1.1}) == "float32"  # < 1.2x
    assert fast_dtype(no_bf16, has_gpu=False, seconds=faster) == "float32"  # emulated bf16: never timed
    assert fast_dtype(avx512_only, has_gpu=True, seconds=slower) == "bfloat16"
    assert fast_dtype("", has_gpu=False) == "float32"
    measured = matmul_seconds()  # this machine, timed once per process
    assert set(measured) == {"bfloat16", "float32"} and all(0 < s < 10 for s in measured.values())
    cfg = load(None, {"model.dtype": "auto"})
    assert cfg.model.dtype == fast_dtype()  # resolved at load: the run's config.yaml records the choice


def test_an_algorithm_brings_the_schedule_it_is_defined_by(tmp_path):
    """ReMix's objective brings the replay schedule (by preset, composition or stage override); a schedule
    set against it, or IGPO without an environment, stops the load naming the key and the reason."""
    for over in (["algorithm.preset=remix"], ["algorithm.preset=remix+forking"],
                 ["algorithm.objective.name=remix"]):
        assert load(None, over).trainer.schedule == "replay", over
    assert load(None, ["algorithm.preset=grpo"]).trainer.schedule == "sync"
    assert load(None, ["algorithm.preset=remix", "trainer.schedule=replay", "replay.fraction=0.2"]).replay.fraction == 0.2
    yaml_file = tmp_path / "remix.yaml"
    yaml_file.write_text("algorithm:\n  preset: remix\ntrainer:\n  schedule: sync\n")
    for path, over in ((None, ["algorithm.preset=remix", "trainer.schedule=async"]), (str(yaml_file), [])):
        with pytest.raises(ConfigError, match=r"^trainer.schedule: algorithm.preset=remix .* needs trainer.schedule="
                                              r"replay \(ReMix learns from replayed"):
            load(path, over)
    with pytest.raises(ConfigError, match=r"^env.name: algorithm.preset=igpo .* needs env.name set to a multi-turn"):
        load(None, ["algorithm.preset=igpo"])
    assert load(str(ROOT / "configs" / "igpo_search.yaml")).env.name == "search"


def test_bad_inputs_stop_before_any_actor_with_one_line_and_exit_2(tmp_path):
    """A cross-field conflict, a run to resume that has no checkpoint, a directory that holds no model, a
    malformed or empty data file: one line on stderr, exit 2, no traceback, no run directory left."""
    (tmp_path / "nomodel").mkdir()
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"\n')
    (tmp_path / "empty.jsonl").write_text("")
    cases = {
        "placement=colocated trainer.schedule=async": "placement: colocated runs generation and the update",
        f"trainer.resume={tmp_path / 'gone'}": "no complete checkpoint under",
        f"model.path={tmp_path / 'nomodel'}": "not a Hugging Face model directory (no config.json in it)",
        f"data.train_files=[{tmp_path / 'bad.jsonl'}]": "bad.jsonl:1: invalid JSON",
        f"data.train_files=[{tmp_path / 'empty.jsonl'}]": "empty.jsonl: empty prompt file (no rows)",
    }
    runs = tmp_path / "runs"
    for args, needle in cases.items():
        proc = subprocess.run([sys.executable, str(ROOT / "launch" / "grpo.py"), *args.split(), f"trainer.output_dir={runs}",
                               "logging.wandb=false"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, (args, proc.stderr[-2000:])
        assert not runs.exists() or not any(runs.iterdir()), (args, list(runs.iterdir()))


def test_colocated_vllm_with_several_learner_ranks_is_refused_not_hung():
    with pytest.raises(ConfigError, match=r"^placement: colocated with rollout.engine: vllm needs learner.num_ranks: 1"):
        load(None, ["placement=colocated", "rollout.engine=vllm", "learner.num_ranks=2"])
    assert load(None, ["placement=colocated", "rollout.engine=vllm"]).learner.num_ranks == 1


def test_the_algorithm_section_has_one_entry_per_stage_kind():
    """The config's stage sections are the algorithms package's stage kinds, in its order (a kind added there
    without a config section, or the reverse, fails here); each aggregation mode is its own stage class."""
    import algorithms
    from rltrain.config.schema import STAGES

    assert STAGES == algorithms.STAGE_KINDS
    modes = {m: algorithms.REGISTRY["aggregation"][m] for m in algorithms.AGG_MODES}
    assert len(set(modes.values())) == len(modes) and all(cls.mode == m for m, cls in modes.items())
    import pickle

    built = algorithms.build({"preset": "dr_grpo"})
    assert pickle.loads(pickle.dumps(built)).aggregation.mode == built.aggregation.mode
