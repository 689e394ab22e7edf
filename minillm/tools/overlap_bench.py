"""Gradient sums after backward against sums in buckets during it: `python -m minillm.tools.overlap_bench`.

Runs `mpirun -n 2 python train.py` at train.py's GPT and at 6 layers x 384
(block 256, batch 4), each with --bucket-mb 0 (one Allreduce of the whole
gradient after backward) and with --bucket-mb B (buckets summed during
backward, training/buckets.py), the two in turn, --rounds times, with the
same global batch (2 micro-batches a step, one a rank). Each run prints the
median over its logged steps (the first left out: warm-up) of tokens/s, of
ms a step, and of the ms a step waited after backward for the gradient's
sums (`sum_wait_ms` in metrics.jsonl: with one Allreduce, the copy and the
whole sum; with buckets, whatever backward did not hide), with the 1-minute
load average before it. Then, per size and round, bucketed / blocking and
the wait hidden.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.training.buckets import DEFAULT_BUCKET_MB

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = ("--grad-accum 2 --threads 1 --eval-iters 2 --eval-interval 1000 --log-interval 5 --sample-tokens 0 "
          "--full-val-tokens 0 --no-progress").split()
SIZES = {"train.py": ["--max-iters", "60"],  # configs/gpt.json: 4 layers, 128 wide, block 64, batch 12
         "6x384": "--n-layer 6 --n-embd 384 --block-size 256 --batch-size 4 --max-iters 12 --log-interval 2".split()}


def launcher(ranks):
    """mpirun for `ranks` ranks on this machine, whatever its core count (as root too, as in containers)."""
    root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return ["mpirun", *root, "--oversubscribe", "-n", str(ranks)]


def run_once(ranks, argv, out_dir):
    """One training run; (median tokens/s, median ms/step, median sum_wait_ms) of its logged steps after the first."""
    done = subprocess.run([*launcher(ranks), sys.executable, "train.py", *argv, "--out-dir", out_dir], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: train.py {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        steps = [r for r in map(json.loads, f) if "tokens_per_s" in r][1:]
    if not steps:
        raise SystemExit(f"error: train.py {' '.join(argv)} logged no steps after the first (raise --max-iters)")
    return tuple(statistics.median(r[key] for r in steps) for key in ("tokens_per_s", "ms_per_step", "sum_wait_ms"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    p.add_argument("--rounds", type=int, default=2, help="rounds of every run, in turn")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=DEFAULT_BUCKET_MB, help="the bucketed runs' bucket size")
    p.add_argument("--train-args", default="", help="more train.py flags for every run (the last word wins)")
    args = p.parse_args(argv)
    modes = {"blocking": "0", "bucketed": str(args.bucket_mb)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for size in args.sizes:
                for mode, bucket_mb in modes.items():
                    load = os.getloadavg()[0]
                    flags = [*COMMON, *SIZES[size], "--bucket-mb", bucket_mb, *shlex.split(args.train_args)]
                    tokens, ms, wait = run_once(args.ranks, flags, os.path.join(tmp, f"{size}-{mode}-{round_}"))
                    rows.append({"size": size, "mode": mode, "round": round_, "tokens_per_s": tokens,
                                 "ms_per_step": ms, "sum_wait_ms": wait, "load": load})
                    print(f"round {round_}  {size:9s} {mode:9s} {tokens:10,.0f} tokens/s {ms:9.1f} ms/step "
                          f"{wait:8.2f} ms waiting for the sums   load {load:.2f}", flush=True)
    for size in args.sizes:
        for round_ in range(1, args.rounds + 1):
            blocking, bucketed = (next(r for r in rows if (r["size"], r["mode"], r["round"]) == (size, mode, round_))
                                  for mode in modes)
            ratio = bucketed["tokens_per_s"] / blocking["tokens_per_s"]
            print(f"{size:9s} round {round_}: bucketed / blocking {ratio:.3f}, waiting for the sums "
                  f"{blocking['sum_wait_ms']:.2f} -> {bucketed['sum_wait_ms']:.2f} ms a step")
    return rows


if __name__ == "__main__":
    run_main(main)
