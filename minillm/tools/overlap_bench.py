"""Gradient sums after backward against sums in buckets during it: `mpirun -n 2 python -m minillm.tools.overlap_bench`.

Builds train.py's GPT, task and trainer from train.py's own flags (its
default size unless told, e.g. `--n-layer 6 --n-embd 384 --block-size 256
--batch-size 4`), with --grad-accum 2 (one micro-batch a rank) and one
thread a rank, and runs the trainer's steps alternately one way and the
other, so that whatever else the machine does falls on both alike:

- blocking: one bucket of the whole gradient, summed after backward (train.py
  --bucket-mb 0);
- bucketed: buckets of --bucket-mb, each summed while backward goes on.

The ranks meet at a barrier before every step. Prints, for each way, the
median over the steps (the first two of each left out: warm-up) of ms a
step, tokens/s (the global batch over that), and the ms a step waited after
backward for the gradient's sums (with one bucket, the copy and the whole
sum; with buckets, what backward did not hide, which includes waiting for
the slower rank either way); and the 1-minute load average at the start and
the end.
"""

import argparse
import os
import statistics
import tempfile
import time

from minillm.cli import pretrain
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter, train_config
from minillm.data.lm_data import lm_streams
from minillm.distributed.mpi import world
from minillm.training.buckets import GradientBuckets
from minillm.training.trainer import Trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps of each way, alternating")
    args, train_flags = p.parse_known_args(argv)  # every other flag is train.py's (--bucket-mb: the buckets)
    ranks = world()
    if ranks.size < 2:
        raise SystemExit("error: the gradient is summed over ranks: run under mpirun -n 2 (or more)")
    flags = pretrain.parse_args(["--grad-accum", str(ranks.size), "--threads", "1", "--no-progress",
                                 *train_flags])
    with ranks.writer_first():
        tokenizer, train_ids, val_ids = lm_streams(flags.tokenizer, flags.data, flags.vocab_size, flags.data_dir,
                                                   progress=False)
    model, task = pretrain.build_model_and_task(flags, tokenizer.vocab_size, train_ids, val_ids)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, task, train_config(flags), tmp, progress=False, threads=1, ranks=ranks)
    optimizer = trainer.optimizer
    ways = {"blocking": GradientBuckets(optimizer.params, 0, optimizer.start_sum), "bucketed": optimizer.buckets}
    seconds, waits = {way: [] for way in ways}, {way: [] for way in ways}
    load = os.getloadavg()[0]
    for it in range(args.steps):
        for way, buckets in ways.items():
            optimizer.buckets = buckets
            waited = buckets.wait_seconds
            ranks.barrier()
            t0 = time.perf_counter()
            trainer.step(it, flags.learning_rate)
            seconds[way].append(time.perf_counter() - t0)
            waits[way].append(buckets.wait_seconds - waited)
    tokens = task.tokens_per_step * flags.grad_accum
    rows = {}
    for way in ways:
        step = statistics.median(seconds[way][2:])
        rows[way] = {"ms_per_step": 1000 * step, "tokens_per_s": tokens / step,
                     "sum_wait_ms": 1000 * statistics.median(waits[way][2:])}
    if ranks.is_writer:
        print(f"{model.num_parameters():,} parameters ({4 * optimizer.flat.size / 2**20:.1f} MB of gradient), "
              f"{len(ways['bucketed'].bounds)} buckets of at most {flags.bucket_mb:g} MB, {ranks.size} ranks, "
              f"{args.steps} steps each way, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
        for way, row in rows.items():
            print(f"{way:9s} {row['tokens_per_s']:10,.0f} tokens/s {row['ms_per_step']:9.1f} ms/step "
                  f"{row['sum_wait_ms']:8.2f} ms waiting for the sums")
        print(f"bucketed / blocking: {rows['bucketed']['tokens_per_s'] / rows['blocking']['tokens_per_s']:.3f}")
    return rows


if __name__ == "__main__":
    run_main(main)
