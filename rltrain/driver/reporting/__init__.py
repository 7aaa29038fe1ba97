"""driver/reporting/: what a run tells its user: `tracking` (console line, metrics.jsonl, W&B, offline
without a key), `progress` (the progress line), `report` (report.png and the sweep report from metrics).

May import: rltrain.config, matplotlib, wandb. Never the loop above it (rltrain.driver.trainer, update,
critic, run_setup, sweep), nor driver/flow or driver/recovery.
"""
