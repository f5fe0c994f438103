"""Quality per minute: `rnnlab train` with its defaults for 10 minutes on the bundled Tiny Shakespeare.

    python benchmarks/charlm_quality.py [--minutes 10]

Prints the validation loss (nats/char over the whole last 10% of the corpus) at the end of the
budget and at its best, against the goal of 1.50 (stretch: 1.47, a small transformer on an A100).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL, STRETCH = 1.50, 1.47


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "charlm_quality")
    args, extra = parser.parse_known_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "--max-minutes",
        str(args.minutes),
        "--out",
        str(args.out),
        "--quiet",
        *extra,
    ]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    config = json.loads((args.out / "config.json").read_text())
    with open(args.out / "metrics.csv") as f:
        evals = [r for r in csv.DictReader(f) if r.get("val_loss")]
    final = float(evals[-1]["val_loss"])
    best = min(evals, key=lambda r: float(r["val_loss"]))
    m = config["model"]
    print(
        f"model: {m['cell']} {m['num_layers']}x{m['hidden_size']}, embedding {m['embedding_dim']}, "
        f"dropout {m['dropout']}; {config['progress']['step']} steps in {args.minutes:g} min"
    )
    print(f"validation at the end: {final:.4f} nats/char ({final / math.log(2):.4f} bits/char)")
    print(
        f"best validation:       {float(best['val_loss']):.4f} at step {best['step']} "
        f"({float(best['elapsed_s']) / 60:.1f} min)"
    )
    verdict = "meets" if final <= GOAL else "misses"
    print(f"goal <= {GOAL} nats/char: {verdict} it" + (f" (stretch {STRETCH}: met)" if final <= STRETCH else ""))


if __name__ == "__main__":
    main()
