"""Train a reward model on preference pairs (Bradley-Terry) and export it as a plain HF directory.

    python launch/train_rm.py                                   # built-in pairs on the embedded default model
    python launch/train_rm.py --config configs/rm_toy.yaml train.steps=100
    python launch/train_rm.py data.path=prefs.jsonl model_path=/path/to/model

The export (`<run_dir>/model`) is what the `reward_model` reward loads (reward.functions:
[{name: reward_model, params: {model_path: ...}}]), and TRL / verl load it as is. The last line
printed is the path of the run's summary.json.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: built-in pairs, embedded model)")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rltrain.config import ConfigError
    from rltrain.config.rm import load_rm

    try:
        cfg = load_rm(args.config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from rltrain.rm.train import RewardModelTrainer

    trainer = RewardModelTrainer(cfg)
    try:
        summary = trainer.run()
    except FloatingPointError as e:  # non-finite gradients: the run stops, its checkpoints kept
        from rltrain.workers.group import stop_reason

        print(f"stopped: {stop_reason(e)}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
    print(os.path.join(summary["run_dir"], "summary.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
