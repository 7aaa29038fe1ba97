"""Supervised fine-tuning on demonstrations, on rltrain's DeepSpeed learners; exports a plain HF directory.

    python launch/sft.py                                        # the built-in task's demonstrations, embedded model
    python launch/sft.py --config configs/sft_toy.yaml train.steps=50
    python launch/sft.py data.path=chats.jsonl model_path=/path/to/model   # or data.path=<save_to_disk dir>
    python launch/sft.py --resume runs/<sft-run>                 # continue from its last checkpoint

The export (`<run_dir>/model`) is a valid `model.path` for launch/grpo.py (SFT, then RL). The last line
printed is the path of the run's summary.json.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("WANDB_SILENT", "true")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: built-in demonstrations, embedded model)")
    parser.add_argument("--resume", default=None, help="run directory to continue (same as train.resume=DIR)")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.resume:
        overrides.append(f"train.resume={args.resume}")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rltrain.config import ConfigError
    from rltrain.config.sft import load_sft
    from rltrain.data import DataError

    try:
        cfg = load_sft(args.config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from rltrain.sft.train import SFTTrainer

    try:  # the data and the model directory are read before any actor starts
        trainer = SFTTrainer(cfg)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError) as e:
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
    print(os.path.join(summary["run_dir"], "summary.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
