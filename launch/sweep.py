"""Run a config sweep on Ray Tune: each trial one rltrain run, all of them in one W&B group.

    python launch/sweep.py --config configs/sweeps/toy_lr.yaml
    python launch/sweep.py --config configs/sweeps/toy_lr_asha.yaml num_samples=8 name=lr-asha
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python launch/sweep.py --config configs/sweeps/toy_lr.yaml

Overrides (`key=value`, `--key=value`) set the sweep file's own keys (name, num_samples,
max_concurrent, resources_per_trial.cpus, ...); a trial's run-config keys go under `overrides:` or
`parameters:` in the file. It prints the summary table (trial, overrides, status, pass@1 before, best,
final, steps, wall time); the last line is the path of the sweep's summary.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    for k, v in {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false",
                 "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                 "RAY_DEDUP_LOGS": "0"}.items():  # trials print alike lines: keep each one
        os.environ.setdefault(k, v)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="sweep YAML (configs/sweeps/*.yaml)")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    from rltrain.config import ConfigError
    from rltrain.config.sweep import load_sweep

    try:
        sweep = load_sweep(args.config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"sweep config error: {e}", file=sys.stderr)
        return 2
    from rltrain.driver.sweep import run_sweep

    try:
        path = run_sweep(sweep, Path(args.config).stem)
    finally:
        import ray

        ray.shutdown()
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
