"""dpo/: Direct Preference Optimization on the policy learners (launch/dpo.py).

- `losses`: the pure-torch loss math (sigmoid DPO, IPO, SimPO) and TRL-named metrics;
- `data`: preference pairs -> prompt / completion token ids (one tokenization, a checked split), packed
  into the `PreferenceBatch` (rltrain/workers/dpo_learner.py) the learners train on;
- `train`: the driver: `DPOLearner` ranks (rltrain/workers/dpo_learner.py), the frozen reference's
  log-probs cached per pair, evaluation, checkpoints, resume, export.

May import: torch, ray, transformers, `algorithms`, `rewards` (text helpers), `rltrain.config`,
`rltrain.data`, `rltrain.rm` (preference pairs), `rltrain.workers`, `rltrain.driver` (checkpoint files,
tracking). Outside launch/ only the DPO learner imports from here (`losses`, pure torch).
"""
