"""driver/recovery/: what lets a run survive and come back: `checkpoint` (atomic, complete-or-absent
checkpoints and the RNG state), `restart` (every actor started anew from the last checkpoint; skipped
non-finite steps counted), `preemption` (stop signals -> a checkpoint and the resume command).

May import: rltrain.config, rltrain.workers, ray, torch. Never the loop above it (rltrain.driver.trainer,
update, critic, run_setup, sweep), nor driver/flow or driver/reporting.
"""
