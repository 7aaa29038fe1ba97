"""Every single-turn preset runs real trainer steps end to end (Ray + transformers engine + DeepSpeed).

One Trainer (started with grpo, so a reference actor exists for the presets with a KL term) is reused
for every preset through `Trainer.set_algorithm`; each preset gets one step (two for the stateful DCPO and BAPO) on a tiny batch. A step
must give a finite loss, advance the weight version, and emit the metric that shows the preset's
own stage actually ran (BAPO bounds, forking selected fraction, GTPO conflict share, ...).

`test_preset_configs_load` (no Ray) checks every YAML under configs/ (sweeps aside) against the config
schema, and configs/grpo_toy.yaml with `algorithm.preset=<name>` for every preset.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rltrain.config import load

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# preset -> metrics its own stages emit (besides the common actor/pg_loss)
TELLTALES = {
    "grpo": ["actor/kl_loss"],
    "dr_grpo": ["actor/clipfrac_high"],
    "dapo": ["reward/overlong_penalty_frac", "rollout/gen_rounds"],
    "dapo+forking": ["forking/selected_frac", "forking/entropy_threshold"],
    "gtpo": ["gtpo/conflict_frac", "gtpo/filtered_frac"],
    "dcpo": ["dcpo/nonzero_adv_frac", "dcpo/clip_high_mean"],
    "bapo": ["bapo/c_low_mean", "bapo/c_high_mean"],
    "pacs": ["pacs/critic_acc", "pacs/label_mean"],
    "nsr": ["nsr/kept_frac"],
    "psr": ["nsr/kept_frac"],
    "w_reinforce": ["nsr/kept_frac"],
    "gspo": ["gspo/seq_ratio"],
}


def test_preset_configs_load():
    """Every YAML config loads through the schema; every preset loads on the toy config (one file for all)."""
    import algorithms

    configs = sorted(p for p in (ROOT / "configs").rglob("*.y*ml")
                     if p.relative_to(ROOT / "configs").parts[0] != "sweeps")  # sweeps are W&B files
    assert ROOT / "configs" / "grpo_toy.yaml" in configs
    from rltrain.config.dpo import load_dpo
    from rltrain.config.rm import load_rm
    from rltrain.config.sft import load_sft

    # reward-model training, SFT and DPO have configs of their own (launch/train_rm.py, sft.py, dpo.py)
    other = {"rm_": load_rm, "sft_": load_sft, "dpo_": load_dpo}
    for path in configs:
        loader = next((fn for prefix, fn in other.items() if path.name.startswith(prefix)), None)
        if loader is not None:
            sub = loader(str(path))
            assert sub.learner.lr > 0 and sub.train.steps > 0, path
            continue
        cfg = load(str(path))
        assert cfg.learner.lr > 0 and cfg.trainer.steps > 0, path
    presets = sorted(set(algorithms.PRESETS) - {"forking"}) + ["dapo+forking"]  # forking is an overlay
    assert set(TELLTALES) <= set(presets)
    for preset in presets:
        if preset == "igpo":  # multi-turn only: refused without an environment (tests/test_config.py)
            continue
        cfg = load(str(ROOT / "configs" / "grpo_toy.yaml"), [f"algorithm.preset={preset}"])
        assert cfg.algorithm.preset == preset
        assert cfg.model.path is None and cfg.data.task == "default" and not cfg.data.train_files, preset
        assert cfg.trainer.schedule == ("replay" if preset == "remix" else "sync"), preset


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, ray_session, default_model):
    from rltrain.driver.trainer import Trainer

    cfg = load(None, {
        "model.path": default_model, "rollout.engine": "transformers",
        "rollout.prompts_per_step": 8, "rollout.n_samples": 4, "rollout.max_new_tokens": 6,
        "rollout.max_refill_rounds": 8,
        "learner.lr": 1e-4, "learner.micro_batch_size": 32, "learner.num_ranks": 1, "learner.zero_stage": 0,
        "algorithm.preset": "grpo",  # its KL needs a reference actor: one exists for every preset below
        "trainer.steps": 100, "trainer.output_dir": str(tmp_path_factory.mktemp("presets")),
        "trainer.run_name": "presets", "trainer.seed": 0,
        "eval.n_samples": 1, "eval.max_prompts": 4, "logging.wandb": False,
        "data.n_train": 400, "data.n_test": 8,
    })
    t = Trainer(cfg)
    try:
        yield t
    finally:
        t.close()


# presets that carry state across steps (DCPO per-prompt history, BAPO bounds) get a second step
STATEFUL = {"dcpo", "bapo"}

# psr first: it needs correct samples, which a weak model gives rarely (the others run on anything)
ORDER = ["psr"] + [p for p in TELLTALES if p != "psr"]


@pytest.mark.parametrize("preset", ORDER)
def test_preset_step(trainer, preset):
    trainer.set_algorithm({"preset": preset})
    # DAPO's refills draw twice the groups still missing (rollout.refill_oversample)
    trainer.schedule.collector.refill_oversample = 2.0 if preset == "dapo" else 1.0
    v0 = trainer.version
    n_steps = 2 if preset in STATEFUL else 1
    for _ in range(n_steps):
        m = trainer.step()
    assert m["weights/version"] == v0 + n_steps == trainer.version
    assert "actor/pg_loss" in m and math.isfinite(m["actor/pg_loss"]), (preset, m.get("actor/pg_loss"))
    assert math.isfinite(m["actor/grad_norm"]), preset
    missing = [k for k in TELLTALES[preset] if k not in m]
    assert not missing, f"{preset}: missing {missing}; got {sorted(k for k in m if '/' in k)}"
    for k in TELLTALES[preset]:
        assert math.isfinite(m[k]), (preset, k, m[k])
    if preset == "dapo" and m["rollout/gen_rounds"] > 1:
        assert m["rollout/refill_prompts"] == 2 * m["rollout/refill_missing"] > 0
        assert m["rollout/samples"] == 4 * (8 + m["rollout/refill_prompts"])  # every round's samples counted
    assert 0.0 <= m["data/signal_frac"] <= 1.0 and m["data/samples_total"] >= m["rollout/samples"]
    if preset == "dapo+forking":
        assert 0.0 < m["forking/selected_frac"] <= 0.5, m["forking/selected_frac"]
    if preset == "bapo":
        assert m["bapo/c_low_mean"] <= 1.0 <= m["bapo/c_high_mean"], (m["bapo/c_low_mean"], m["bapo/c_high_mean"])
    if preset in ("nsr", "psr"):  # the data policy keeps one side only; the advantages say which
        assert m["nsr/kept_frac"] == 1.0
    if preset == "pacs":
        assert 0.0 <= m["pacs/critic_acc"] <= 1.0
    if preset == "dcpo":
        assert 0.0 <= m["dcpo/nonzero_adv_frac"] <= 1.0
        assert m["dcpo/tracked_prompts"] > 0  # per-prompt statistics kept from the first step
