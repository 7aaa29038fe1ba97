"""Train a policy with rltrain.

    python launch/grpo.py                                   # embedded default: tiny model, built-in task, CPU
    python launch/grpo.py --config configs/grpo_toy.yaml --learner.lr=5e-5 trainer.steps=20
    python launch/grpo.py --plan cluster.gpus=8 [cluster.gpus_per_node=8]  # where actors land; starts nothing
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
import shlex
import sys


def parse(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: the embedded default)")
    parser.add_argument("--resume", default=None, help="run directory to resume (same as trainer.resume=DIR)")
    parser.add_argument("--plan", action="store_true", help="print where every actor would land and how weights "
                        "would move (for cluster.gpus / cluster.gpus_per_node, else this machine), start nothing")
    args, overrides = parser.parse_known_args(argv)
    if args.resume:
        overrides.append(f"trainer.resume={args.resume}")
    return args, overrides


def without_resume(argv: list[str]) -> list[str]:
    """The command line less its `--resume DIR` / `--resume=DIR` / `trainer.resume=DIR` (to print a resume command)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith(("--resume=", "trainer.resume=", "--trainer.resume")):
            out.append(a)
    return out


def print_plan(cfg) -> int:
    """The placement plan as a table, then (last line) as one JSON object; exit 2 if it cannot be made or
    would break (two NCCL members on one GPU, a GPU over-shared)."""
    import torch

    from rltrain.workers.planner import PlanError, check, dumps, plan_for_config

    try:
        p = plan_for_config(cfg, torch.cuda.device_count())
    except PlanError as e:
        print(f"plan error: {e}", file=sys.stderr)
        return 2
    print(p.table())
    problems = check(p)
    for problem in problems:
        print(f"plan problem: {problem}", file=sys.stderr)
    print(dumps(p))
    return 2 if problems else 0


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
    if args.plan:
        return print_plan(cfg)
    from rltrain.data import DataError
    from rltrain.driver.trainer import Trainer

    try:  # what the config points at (data files, model directory, a run to resume) is read before any actor
        trainer = Trainer(cfg)
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
        import ray

        ray.shutdown()  # flush actor logs before the summary lines
    if summary.get("stopped_by"):  # pre-empted: checkpoint written, exit 0 with the way back
        again = " ".join(shlex.quote(a) for a in without_resume(sys.argv[1:] if argv is None else argv))
        print(f"[rltrain] stopped by {summary['stopped_by']} at step {summary['steps']}; checkpoint "
              f"{summary['checkpoint']}; resume with:\n  python launch/grpo.py {again} --resume {summary['run_dir']}")
        print(summary["summary_path"])
        return 0
    before, after = summary["pass@1_before"], summary["pass@1_after"]
    print(f"[rltrain] done: {summary['steps']} steps in {summary['wall_s']:.0f}s; test pass@1 "
          f"{before:.3f} -> {after:.3f}; checkpoint {summary['checkpoint']}; model {summary['exported_model']}"
          + (f"; report {summary['report']}" if summary.get("report") else ""))
    print(json.dumps({k: summary[k] for k in ("pass@1_before", "pass@1_after", "wall_s")}))
    print(summary["summary_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
