"""Counting, recurrence, attention: `python -m minillm.tools.compare --data tinyshakespeare`.

Trains the three language models of train.py on the same data and tokenizer:
n-gram models of orders 2 to --max-order (modified Kneser-Ney; the best is kept), then
the LSTM and GPT, each under the same training-time budget (their step count
is set from a few timed steps so that the learning-rate schedule ends with the
budget). It writes a markdown table (parameters, train time, validation loss
over the same held-out tokens, perplexity, tokens/s) and a sample from each.
"""

import argparse
import json
import math
import multiprocessing
import os
import shlex
import time

from minillm.cli import pretrain
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.data.corpora import CORPORA
from minillm.models.gpt import GPT
from minillm.models.lstm_lm import LSTMLM
from minillm.tasks.causal_lm import sample_text
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import TrainConfig, Trainer

CHECKPOINTS = {"gpt": GPT, "lstm": LSTMLM}


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def seconds_per_step(args, model_name, steps=20):
    """Time a few training steps of a fresh model, to size the run to the budget."""
    timing_dir = os.path.join(args.out_dir, "timing")
    run = pretrain.parse_args(common_flags(args, model_name, timing_dir))
    tokenizer, train_ids, val_ids = pretrain.lm_streams(run.tokenizer, run.data, run.vocab_size, run.data_dir, False)
    model, task = pretrain.build_model_and_task(run, tokenizer.vocab_size, train_ids, val_ids)
    trainer = Trainer(model, task, TrainConfig(), timing_dir, progress=False)
    trainer.step(0, 1e-4)  # warm-up
    start = time.perf_counter()
    for it in range(1, steps + 1):
        trainer.step(it, 1e-4)
    return (time.perf_counter() - start) / steps


def common_flags(args, model_name, out_dir):
    """train.py flags for one model: the shared data and tokenizer, then that model's own --<model>-flags."""
    return ["--model", model_name, "--data", args.data, "--tokenizer", args.tokenizer,
            "--vocab-size", str(args.vocab_size), "--out-dir", out_dir, "--no-progress", "--sample-tokens", "0",
            *shlex.split(getattr(args, f"{model_name}_flags", None) or "")]


def run_neural(args, model_name):
    per_step = seconds_per_step(args, model_name)
    iters = max(10, int(args.budget / per_step))
    out_dir = os.path.join(args.out_dir, model_name)
    pretrain.main(common_flags(args, model_name, out_dir) + [
        "--max-iters", str(iters), "--lr-decay-iters", str(iters), "--eval-interval", str(max(1, iters // 4)),
        "--max-seconds", str(args.budget)])
    records = read_metrics(out_dir)
    speeds = sorted(r["tokens_per_s"] for r in records if "tokens_per_s" in r)
    model = CHECKPOINTS[model_name].from_pretrained(os.path.join(out_dir, "checkpoint"))
    steps = max(r["iter"] for r in records)
    return {"model": model_name.upper(), "parameters": model.num_parameters(),
            "train_seconds": records[-1]["train_seconds"], "steps": steps, "val_loss": records[-1]["full_val_loss"],
            "tokens_per_s": speeds[len(speeds) // 2] if speeds else float("nan"),
            "sample": sample_text(model, load_tokenizer(os.path.join(out_dir, "checkpoint")), args.sample_tokens, 0)}


def neural_rows(args, names):
    """run_neural for each model, one after the other, or with --parallel in fresh processes
    started with one BLAS thread each (the thread count is read when NumPy loads, so the
    limit goes in the environment the new interpreters start from)."""
    if not args.parallel:
        return [run_neural(args, name) for name in names]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    pool = multiprocessing.get_context("spawn").Pool(len(names))
    rows = pool.starmap(run_neural, [(args, name) for name in names])
    pool.close()  # let the workers exit on their own (terminating them leaks their semaphores)
    pool.join()
    return rows


def run_ngrams(args):
    """Orders 2 to args.max_order; the one with the lowest validation loss is the n-gram row
    (parameters: n-grams stored)."""
    best = None
    for order in range(2, args.max_order + 1):
        out_dir = os.path.join(args.out_dir, f"ngram-{order}")
        flags = common_flags(args, "ngram", out_dir) + ["--order", str(order), "--sample-tokens",
                                                         str(args.sample_tokens)]
        record = pretrain.main(flags)[0]
        if best is None or record["full_val_loss"] < best["val_loss"]:
            best = {"model": f"{order}-gram (modified Kneser-Ney)", "parameters": record["ngrams"],
                    "train_seconds": record["train_seconds"], "steps": None, "val_loss": record["full_val_loss"],
                    "tokens_per_s": record["train_tokens"] / record["train_seconds"], "sample": record["sample"]}
    return best


def table(rows, args):
    unit = "bits/char" if args.tokenizer == "char" else "bits/token"
    lines = [f"| model | parameters | train time (s) | val loss (nats/token) | perplexity | {unit} | train tokens/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['train_seconds']:.0f} | {r['val_loss']:.4f} | "
                     f"{math.exp(r['val_loss']):.2f} | {r['val_loss'] / math.log(2):.3f} | {r['tokens_per_s']:,.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", choices=CORPORA, default="tinyshakespeare")
    p.add_argument("--tokenizer", choices=["char", "bpe", "wordpiece"], default="char")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--budget", type=float, default=300.0, help="training seconds for each neural model")
    p.add_argument("--max-order", type=int,
                   help="highest n-gram order tried (default 8 for characters, whose contexts are short, else 5)")
    p.add_argument("--sample-tokens", type=int, default=200)
    p.add_argument("--lstm-flags", help='more train.py flags for the LSTM, e.g. "--dropout 0.1"')
    p.add_argument("--gpt-flags", help='more train.py flags for the GPT, e.g. "--dropout 0.1 --block-size 128"')
    p.add_argument("--parallel", action="store_true",
                   help="train the LSTM and GPT at the same time, one BLAS thread each (a core each on two cores)")
    p.add_argument("--out-dir", default="out/compare")
    p.add_argument("--report", help="markdown file to write (default: <out-dir>/report.md)")
    args = p.parse_args(argv)
    args.max_order = args.max_order or (8 if args.tokenizer == "char" else 5)
    rows = [run_ngrams(args)] + neural_rows(args, ["lstm", "gpt"])
    text = [f"# Language models on {args.data} ({args.tokenizer} tokens)", "",
            f"Neural models: {args.budget:.0f} s of training each. Validation loss over the same held-out "
            f"tokens (the first 1M; for the n-gram, the documents or lines within them); the n-gram order "
            f"was chosen on them.", "", table(rows, args), ""]
    for r in rows:
        text += [f"## {r['model']}", "", "```", r["sample"], "```", ""]
    report = args.report or os.path.join(args.out_dir, "report.md")
    os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
    with open(report, "w", encoding="utf-8") as f:
        f.write("\n".join(text))
    print(table(rows, args))
    print(f"report: {report}")
    return rows


if __name__ == "__main__":
    run_main(main)
