"""How the default character model was chosen: train each candidate for the same wall-clock budget
on the bundled Tiny Shakespeare and compare the validation loss (nats/char, last 10%, all of it).

    python benchmarks/charlm_sweep.py --minutes 10            # all candidates, one after another
    python benchmarks/charlm_sweep.py --minutes 10 --only h512_d25

Each run is `rnnlab train` in a subprocess, so what is measured is exactly what users get. Results
are appended to benchmarks/results/charlm_sweep.csv and printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

CANDIDATES = {
    "h512_d0": ["--hidden", "512", "--dropout", "0"],
    "h512_d25": ["--hidden", "512", "--dropout", "0.25"],
    "h512_d10": ["--hidden", "512", "--dropout", "0.1"],
    "h512_d0_lr3e-3": ["--hidden", "512", "--dropout", "0", "--lr", "3e-3"],
    "h512_d0_b64": ["--hidden", "512", "--dropout", "0", "--batch-size", "64", "--lr", "3e-3"],
    "h512_d0_t256": ["--hidden", "512", "--dropout", "0", "--seq-len", "256"],
    "h768_d10": ["--hidden", "768", "--dropout", "0.1"],
    "h768_d0": ["--hidden", "768", "--dropout", "0"],
    "h384x2_d0": ["--hidden", "384", "--layers", "2", "--dropout", "0"],
}


def run(name: str, flags: list[str], minutes: float) -> dict:
    out = ROOT / "runs" / "sweep" / f"{name}_{minutes:g}min"
    if (out / "config.json").exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "--max-minutes",
        str(minutes),
        "--out",
        str(out),
        "--quiet",
        "--sample-length",
        "0",
        "--eval-every",
        "500",
        *flags,
    ]
    started = time.time()
    subprocess.run(cmd, check=True)
    config = json.loads((out / "config.json").read_text())
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    vals = [(float(r["val_loss"]), int(r["step"]), float(r["elapsed_s"])) for r in rows if r.get("val_loss")]
    best = min(vals)
    speeds = [float(r["tokens_per_s"]) for r in rows if r.get("tokens_per_s")]
    return {
        "name": name,
        "flags": " ".join(flags),
        "minutes": minutes,
        "steps": config["progress"]["step"],
        "final_val": round(vals[-1][0], 4),
        "best_val": round(best[0], 4),
        "best_at_min": round(best[2] / 60, 1),
        "median_tok_s": round(sorted(speeds)[len(speeds) // 2]),
        "wall_s": round(time.time() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", choices=list(CANDIDATES), help="candidates to run (default: all)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "charlm_sweep.csv"
    for name in args.only or CANDIDATES:
        row = run(name, CANDIDATES[name], args.minutes)
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(" | ".join(str(v) for v in row.values()), flush=True)


if __name__ == "__main__":
    main()
