"""The prepared GPU check: `python -m minillm.tools.device_check --out-dir DIR` on a machine with CuPy.

Three stages, each a subprocess under its own time limit, then one summary:

  tests   the test suite on CuPy (MINILLM_DEVICE=gpu python -m pytest -q)
  bench   the train step (minillm.tools.bench) on the GPU at train.py's size and
          at GPT-2 small (124M, block 1024), in float32 and float16, each timed in
          turns with PyTorch CUDA eager when PyTorch is installed
  train   `python train.py --device gpu`: the default run, its validation loss
          and tokens/s

Everything lands in --out-dir: each stage's log, bench.jsonl, the run's
metrics.jsonl and summary.json. The stages' default limits add up to nine
minutes, so a lent GPU answers in one call of under ten. Datasets come from
$MINILLM_DATA as always; a dataset that is not there skips the tests that
need it. `--device cpu` runs the same stages on the CPU, a dry run of the
script itself (tests/tools/test_device_check.py).
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_stage(name, argv, out_dir, limit, device):
    """Run argv (a Python command) from the repository root with output to out_dir/<name>.log;
    {"stage", "seconds", "returncode", "timed_out"}."""
    env = {**os.environ, "MINILLM_DEVICE": device, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(os.path.join(out_dir, f"{name}.log"), "w", encoding="utf-8") as log:
        try:
            done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=limit)
            returncode, timed_out = done.returncode, False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
    return {"stage": name, "seconds": round(time.perf_counter() - start, 1), "returncode": returncode,
            "timed_out": timed_out}


def read_log(out_dir, name):
    with open(os.path.join(out_dir, f"{name}.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pytest_counts(text):
    """{"passed": n, "failed": n, ...} from pytest's last summary line."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", text)}


def check(args):
    out = os.path.abspath(args.out_dir)
    os.makedirs(out, exist_ok=True)
    summary = []

    stage = run_stage("tests", ["-m", "pytest", "-q", "-p", "no:cacheprovider", *shlex.split(args.pytest_args)],
                      out, args.tests_limit, args.device)
    stage.update(pytest_counts(read_log(out, "tests")))
    summary.append(stage)

    bench_json = os.path.join(out, "bench.jsonl")
    for precision in args.precisions:
        stage = run_stage(f"bench-{precision}", ["-m", "minillm.tools.bench", "--device", args.device,
                                                 "--precision", precision, "--sizes", *args.bench_sizes,
                                                 "--json", bench_json, *shlex.split(args.bench_args)],
                          out, args.bench_limit, args.device)
        summary.append(stage)
    rows = read_jsonl(bench_json)

    run_dir = os.path.join(out, "train")
    stage = run_stage("train", ["train.py", "--device", args.device, "--out-dir", run_dir, "--no-progress",
                                *shlex.split(args.train_args)], out, args.train_limit, args.device)
    metrics = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    speeds = [r["tokens_per_s"] for r in metrics if "tokens_per_s" in r]
    stage["full_val_loss"] = next((r["full_val_loss"] for r in metrics if "full_val_loss" in r), None)
    stage["median_tokens_per_s"] = round(sorted(speeds)[len(speeds) // 2]) if speeds else None
    summary.append(stage)

    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"device": args.device, "stages": summary, "bench": rows}, f, indent=1)
    print_summary(summary, rows)
    return summary, rows


def print_summary(summary, rows):
    print("---- device check ----")
    for s in summary:
        state = "timed out" if s["timed_out"] else ("ok" if s["returncode"] == 0 else f"exit {s['returncode']}")
        extra = {k: v for k, v in s.items() if k not in ("stage", "seconds", "returncode", "timed_out")}
        print(f"{s['stage']:15s} {state:10s} {s['seconds']:7.1f} s  " + " ".join(f"{k} {v}" for k, v in extra.items()))
    for r in rows:
        torch = (f"   pytorch {r['torch_tokens_per_s']:9.0f} tokens/s  ratio {r['speed_ratio']:.2f}"
                 if "speed_ratio" in r else "")
        print(f"bench {r['size']:8s} {r['precision']:8s} minillm {r['tokens_per_s']:9.0f} tokens/s "
              f"{r['ms_per_step']:8.1f} ms/step {r['peak_memory_mb']:7.0f} MB{torch}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--out-dir", required=True, help="logs, bench.jsonl, the training run and summary.json")
    p.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="cpu: a dry run of the stages")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments (paths, -k, -x)")
    p.add_argument("--bench-sizes", nargs="+", default=["default", "gpt2"], help="minillm.tools.bench's sizes")
    p.add_argument("--precisions", nargs="+", choices=["float32", "float16"], default=["float32", "float16"])
    p.add_argument("--bench-args", default="--rounds 3 --iters 5", help="extra minillm.tools.bench arguments")
    p.add_argument("--train-args", default="", help="extra train.py arguments (default: train.py's own run)")
    p.add_argument("--tests-limit", type=float, default=240, help="seconds for the test suite")
    p.add_argument("--bench-limit", type=float, default=90, help="seconds for each precision's benchmark")
    p.add_argument("--train-limit", type=float, default=120, help="seconds for train.py")
    args = p.parse_args(argv)
    summary, _ = check(args)
    return 0 if all(s["returncode"] == 0 for s in summary) else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
