"""Train a policy with rltrain.

    python launch/grpo.py                                   # embedded default: tiny model, built-in task, CPU
    python launch/grpo.py --config configs/grpo_toy.yaml --learner.lr=5e-5 trainer.steps=20
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python launch/grpo.py --config configs/grpo_toy.yaml

Overrides use dotted keys, as `--a.b=1`, `--a.b 1` or the `a.b=1` form W&B sweep agents pass.
The last line printed is the path of the run's summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def parse(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: the embedded default)")
    parser.add_argument("--resume", default=None, help="run directory to resume (same as trainer.resume=DIR)")
    args, overrides = parser.parse_known_args(argv)
    if args.resume:
        overrides.append(f"trainer.resume={args.resume}")
    return args, overrides


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from rltrain.config import ConfigError, load

    args, overrides = parse(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load(args.config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from rltrain.driver.trainer import Trainer

    trainer = Trainer(cfg)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
        import ray

        ray.shutdown()  # flush actor logs before the summary lines
    before, after = summary["pass@1_before"], summary["pass@1_after"]
    print(f"[rltrain] done: {summary['steps']} steps in {summary['wall_s']:.0f}s; test pass@1 "
          f"{before:.3f} -> {after:.3f}; checkpoint {summary['checkpoint']}; model {summary['exported_model']}"
          + (f"; report {summary['report']}" if summary.get("report") else ""))
    print(json.dumps({k: summary[k] for k in ("pass@1_before", "pass@1_after", "wall_s")}))
    print(summary["summary_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
