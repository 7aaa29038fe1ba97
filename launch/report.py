"""Overlay runs in one figure: reward, eval pass@k, entropy, response length, clip fractions, step time.

    python launch/report.py runs/a runs/b                       # -> report.png in the current directory
    python launch/report.py runs/sweeps/toy_lr-<time>/trials/*  --out sweep.png
    python launch/report.py runs/a --labels "lr 1e-4"

Each argument is a run directory (it holds metrics.jsonl). Every run also writes its own
runs/<run>/report.png at the end. The last line printed is the path of the PNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--out", default="report.png", help="PNG to write (default: ./report.png)")
    parser.add_argument("--labels", nargs="*", default=None, help="one legend label per run (default: directory names)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--dpi", type=int, default=90, help="resolution (the figure is 16 x 8.5 inches)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from rltrain.driver.reporting.report import read_metrics, write_report

    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"--labels has {len(args.labels)} names for {len(args.runs)} runs")
    labels = args.labels or [None] * len(args.runs)
    try:
        runs = [read_metrics(Path(d), label) for d, label in zip(args.runs, labels)]
    except (FileNotFoundError, ValueError) as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    print(write_report(runs, Path(args.out), args.title, dpi=args.dpi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
