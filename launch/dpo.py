"""Preference optimisation of a policy (DPO, IPO, SimPO) on rltrain's DeepSpeed learners.

    python launch/dpo.py                                    # built-in pairs on the embedded default model
    python launch/dpo.py --config configs/dpo_toy.yaml dpo.loss=ipo dpo.beta=0.5
    python launch/dpo.py data.path=prefs.jsonl model_path=/path/to/model learner.lora.rank=16
    python launch/dpo.py --resume runs/dpo-20250101-120000 [train.steps=200]
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python launch/dpo.py --config configs/dpo_toy.yaml

Overrides use dotted keys (`--a.b=1`, `--a.b 1` or `a.b=1`). `--resume DIR` continues DIR's run from its
newest checkpoint with DIR's config.yaml (or `--config`), the overrides on top. The export
(`<run_dir>/model`) is a plain HF directory, a `model.path` for launch/grpo.py. The last line printed is
the path of the run's summary.json.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: built-in pairs, embedded model)")
    parser.add_argument("--resume", default=None, help="run directory to continue from its newest checkpoint")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rltrain.config import ConfigError
    from rltrain.config.dpo import load_dpo

    config = args.config
    if args.resume:
        overrides.append(f"train.resume={args.resume}")
        if config is None and os.path.isfile(os.path.join(args.resume, "config.yaml")):
            config = os.path.join(args.resume, "config.yaml")
    try:
        cfg = load_dpo(config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from rltrain.data import DataError
    from rltrain.dpo.train import DPOTrainer

    try:  # data, model directory and the run to resume are read before any actor starts
        trainer = DPOTrainer(cfg)
    except (DataError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"input error: {e}", file=sys.stderr)
        return 2
    try:
        summary = trainer.run()
    except FloatingPointError as e:  # non-finite gradients: the run stops, its checkpoints kept
        from rltrain.workers.group import stop_reason

        print(f"stopped: {stop_reason(e)}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
        import ray

        ray.shutdown()  # flush actor logs before the summary lines
    before, after = summary["eval_before"], summary["eval_after"]
    print(f"[rltrain] dpo ({summary['loss']}) done: {summary['steps']} steps in {summary['wall_s']:.0f}s; held-out "
          f"rewards/accuracies {before['eval_rewards/accuracies']:.3f} -> {after['eval_rewards/accuracies']:.3f}, "
          f"rewards/margins {before['eval_rewards/margins']:.3f} -> {after['eval_rewards/margins']:.3f}; checkpoint "
          f"{summary['checkpoint']}; model {summary['model']}", flush=True)
    print(summary["summary_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
