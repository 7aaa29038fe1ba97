"""The claims table's testbeds, arms and claims, as data (read by launch/bench/bench_claims.py).

A testbed is a config plus overrides, a step budget and the evaluation that scores it; an arm is the
algorithm (and schedule) trained on it; a claim pairs a method's arm with the same-budget baseline arm
on the same testbed and seeds, names the evaluation figure its paper's claim is about, the kind of claim
("superior": method > baseline; "noninferior": method >= baseline - margin) and the method's own metrics,
which show its mechanism acting. Paper numbers are quoted from the papers' abstracts or main tables
(../shared/ALGORITHMS.md has the math and the sources).
"""

from __future__ import annotations

TOY = "configs/grpo_toy.yaml"
PASSK_EVAL = {"eval.n_samples": 64, "eval.max_prompts": 100}

TESTBEDS: dict[str, dict] = {
    "rev4_passk": {
        "config": TOY, "steps": 60, "over": {**PASSK_EVAL, "learner.lr": 3.0e-5},
        "about": "the default task (reverse 4 digits, 10^4 possible answers), 60 steps of 32 prompts x 8, lr 3e-5 "
                 "(small updates, the paper's regime); pass@k for k = 1..64 on 100 held-out prompts x 64 samples"},
    "rev4_passk_lr1e-4": {
        "config": TOY, "steps": 60, "over": {**PASSK_EVAL, "learner.lr": 1.0e-4},
        "about": "rev4_passk at the toy default lr 1e-4 (the issue asks for two learning rates)"},
    "rev4_repeat": {
        "config": TOY, "steps": 60, "over": {**PASSK_EVAL, "data.n_train": 64, "learner.mini_batches": 2},
        "about": "a 64-prompt training pool (each prompt comes back every other step: DCPO's history acts) and two "
                 "optimizer steps per rollout batch (the ratio leaves 1: the clip rules act); right and wrong answers "
                 "of a group share most tokens (GTPO's conflict tokens)"},
    "rev4_stale": {
        "config": TOY, "steps": 60,
        "over": {"eval.n_samples": 16, "learner.lr": 3.0e-4, "learner.mini_batches": 8, "trainer.schedule": "async",
                 "trainer.max_staleness": 4},
        "about": "stale off-policy updates: generation 4 versions ahead (async k = 4) and 8 optimizer steps per rollout "
                 "batch at lr 3e-4, so late mini-batches see ratios far from 1 and fixed clipping cuts the positive "
                 "tokens' share of the gradient"},
    "rev4_replay": {
        "config": TOY, "steps": 80, "curve_every": 20, "over": {"eval.n_samples": 16},
        "about": "80 steps; pass@1 every 20 steps against samples generated and training seconds"},
    "rev4_sync": {
        "config": TOY, "steps": 60, "over": {"eval.n_samples": 16},
        "about": "the default run (60 steps of 32 prompts x 8, lr 1e-4)"},
    "search_chain": {
        "config": "configs/igpo_search_chain.yaml", "steps": 60, "over": {},
        "about": "multi-hop search: each question needs 3 lookups (entity -> entity -> entity -> value), the outcome "
                 "reward is 1 only for the final value; 60 steps of 16 prompts x 8 episodes"},
}

REPLAY = {"trainer.schedule": "replay", "replay.fraction": 0.4, "replay.updates_per_batch": 2, "replay.depth": 2}
FIXED_CLIP = {"algorithm.objective": {"name": "ppo_clip", "low": 0.8, "high": 1.2, "dual_clip": 3.0}}

ARMS: dict[str, dict] = {
    "grpo": {"algorithm.preset": "grpo"},
    "nsr": {"algorithm.preset": "nsr"},
    "w_reinforce": {"algorithm.preset": "w_reinforce"},
    "dcpo": {"algorithm.preset": "dcpo"},
    "pacs": {"algorithm.preset": "pacs"},
    "gtpo": {"algorithm.preset": "gtpo"},
    "bapo": {"algorithm.preset": "bapo"},                      # the paper's search (rho0 0.4 on the positive share)
    "bapo_code": {"algorithm.preset": "bapo", "algorithm.objective": {"mode": "code", "target": 1.0, "low_max": 0.8,
                                                                       "high_max": 2.0, "high_step": 0.05,
                                                                       "low_step": 0.05}},  # the released code's
    "bapo_fixed": {"algorithm.preset": "bapo", **FIXED_CLIP},  # BAPO's stages with the fixed [0.8, 1.2] clip
    "remix": {"algorithm.preset": "remix", **REPLAY},
    "grpo_replay": {"algorithm.preset": "grpo", **REPLAY},     # the same data reuse without ReMix's corrections
    "dapo": {"algorithm.preset": "dapo"},
    "dapo_forking": {"algorithm.preset": "dapo+forking"},
    "igpo": {"algorithm.preset": "igpo"},
}

# method -> the claim, its testbed, arms and figures. `also`: further testbeds the same arms run on.
CLAIMS: dict[str, dict] = {
    "nsr": {
        "paper": "Zhu et al. 2025, The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning (arXiv 2506.01347)",
        "claim": "training only on negative samples (NSR) improves pass@k across the whole spectrum, matching or "
                 "surpassing PPO/GRPO at large k (up to k = 256 on MATH/AIME with Qwen2.5/Qwen3)",
        "testbed": "rev4_passk", "also": ["rev4_passk_lr1e-4"], "arm": "nsr", "baseline": "grpo",
        "metric": "eval/pass@64", "kind": "noninferior", "margin": 0.03, "also_metrics": ["eval/pass@1"],
        "mechanism": ["rollout/entropy", "nsr/kept_frac"]},
    "w_reinforce": {
        "paper": "Zhu et al. 2025 (arXiv 2506.01347), Weighted-REINFORCE, lambda = 0.1",
        "claim": "down-weighting positive samples (lambda = 0.1) gives strong pass@k across k, outperforming "
                 "PPO/GRPO at large k",
        "testbed": "rev4_passk", "also": ["rev4_passk_lr1e-4"], "arm": "w_reinforce", "baseline": "grpo",
        "metric": "eval/pass@64", "kind": "superior", "also_metrics": ["eval/pass@1"], "mechanism": ["rollout/entropy"]},
    "dcpo": {
        "paper": "Yang et al. 2025, DCPO: Dynamic Clipping Policy Optimization (arXiv 2509.02333)",
        "claim": "smooth advantage standardisation over a prompt's history gives non-zero advantages where GRPO's "
                 "groups give none (+28% non-zero advantage over GRPO on average) and a higher score than GRPO and "
                 "DAPO (Avg@32 on AIME24 38.8 vs 32.1 for GRPO, Qwen2.5-Math-7B)",
        "testbed": "rev4_repeat", "arm": "dcpo", "baseline": "grpo", "metric": "eval/pass@1", "kind": "superior",
        "mechanism": ["dcpo/nonzero_adv_frac", "dcpo/clip_high_mean", "rollout/frac_reward_zero_std"]},
    "pacs": {
        "paper": "Li et al. 2025, PACS: Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR "
                 "(arXiv 2509.02522)",
        "claim": "the reward as a supervised target for the policy-as-critic score beats PPO and GRPO, most at large k "
                 "(pass@256 on AIME 2025 59.78%, +13.32 over PPO and +14.36 over GRPO)",
        "testbed": "rev4_repeat", "arm": "pacs", "baseline": "grpo", "metric": "eval/pass@64", "kind": "superior",
        "also_metrics": ["eval/pass@1"],
        "mechanism": ["pacs/critic_acc", "pacs/logit_mean"]},
    "gtpo": {
        "paper": "Simoni et al. 2025, GTPO: Trajectory-Based Policy Optimization in Large Language Models (arXiv 2508.03772)",
        "claim": "protecting conflict tokens (shared by right and wrong answers of a group) and filtering high-entropy "
                 "completions keeps training stable and beats GRPO on pass@1 (GSM8K, MATH, AIME)",
        "testbed": "rev4_repeat", "arm": "gtpo", "baseline": "grpo", "metric": "eval/pass@1", "kind": "superior",
        "mechanism": ["gtpo/conflict_frac", "gtpo/filtered_frac", "rollout/entropy"]},
    "bapo": {
        "paper": "Xi et al. 2025, BAPO: Stabilizing Off-Policy RL for LLMs via Balanced Policy Optimization with "
                 "Adaptive Clipping (arXiv 2510.18927)",
        "claim": "with stale data, negative-advantage samples dominate the policy gradient and fixed clipping blocks "
                 "entropy-increasing updates (entropy falls sharply, training may collapse); bounds adjusted to "
                 "re-balance positive and negative contributions preserve entropy and give fast, stable, "
                 "data-efficient training (sample replay, partial rollouts)",
        "testbed": "rev4_stale", "arm": "bapo_code", "also_arms": ["bapo"], "baseline": "bapo_fixed",
        "metric": "eval/pass@1", "kind": "superior",
        "mechanism": ["bapo/c_high_mean", "bapo/c_low_mean", "actor/clipfrac_low", "rollout/entropy"]},
    "remix": {
        "paper": "Liang et al. 2025, Squeeze the Soaked Sponge: Efficient Off-policy Reinforcement Finetuning for LLM "
                 "(arXiv 2507.06892)",
        "claim": "reusing off-policy data with mix-policy proximal updates, KL-Convex and reincarnation reaches the "
                 "same accuracy with far fewer rollouts (30x-450x less rollout data than on-policy baselines)",
        "testbed": "rev4_replay", "arm": "remix", "baseline": "grpo_replay", "metric": "eval/pass@1",
        "kind": "superior", "compare_also": ["grpo"],
        "mechanism": ["remix/replayed_frac", "remix/convex_kl", "replay/fraction", "is/ratio_max"]},
    "forking": {
        "paper": "Wang et al. 2025, Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective RLVR "
                 "(arXiv 2506.01939)",
        "claim": "updating only the top 20% highest-entropy tokens matches full-token DAPO on Qwen3-8B and beats it on "
                 "Qwen3-32B (+11.04 AIME'25, +7.71 AIME'24)",
        "testbed": "rev4_sync", "arm": "dapo_forking", "baseline": "dapo", "metric": "eval/pass@1",
        "kind": "noninferior", "margin": 0.03,
        "mechanism": ["forking/selected_frac", "forking/entropy_threshold", "rollout/entropy"]},
    "igpo": {
        "paper": "Wang et al. 2025, Information Gain-based Policy Optimization (arXiv 2510.14967, ICLR 2026)",
        "claim": "outcome-only rewards in multi-turn search collapse advantages (every rollout of a group scores "
                 "alike) and hide which turn helped; turn-level information gain gives dense credit and beats strong "
                 "baselines (GRPO among them) in accuracy and sample efficiency",
        "testbed": "search_chain", "arm": "igpo", "baseline": "grpo", "metric": "eval/pass@1", "kind": "superior",
        "also_metrics": ["eval/pass@1_per_100_tokens"],
        "mechanism": ["igpo/info_gain_mean", "igpo/gt_prob_last", "multiturn/tool_calls_mean",
                      "rollout/frac_reward_zero_std"]},
}

# CurES's row comes from launch/bench/bench_cures.py (its own bench, docs/cures.json); bench_claims copies it.
CURES = {
    "paper": "Sun et al. 2025, CurES: From Gradient Analysis to Efficient Curriculum Learning for Reasoning LLMs "
             "(arXiv 2510.01037)",
    "claim": "sampling prompts by their estimated success rate and allocating rollouts by variance raise the share "
             "of prompts that carry a gradient and the score (+3.30 and +4.82 points over GRPO, 1.5B and 7B)",
    "source": ("docs/cures.json", "toy_n256"), "variant": "cures", "baseline": "uniform",
}
