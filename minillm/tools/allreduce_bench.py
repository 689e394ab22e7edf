"""Allreduce bandwidth over MPI: `mpirun -n 2 python -m minillm.tools.allreduce_bench`.

Times MPI Allreduce (sum, in place) of float32 arrays from 4 KB up to the
flat gradient of a model size, the operation data parallelism runs once a
step. Prints, for each size, the median time, the algorithm bandwidth
(bytes / time) and the bus bandwidth (2 (n - 1) / n bytes / time: what a
ring all-reduce moves through each rank's link, comparable across rank
counts, as nccl-tests reports it). These times fit the alpha-beta cost model
in docs/DESIGN_NOTES.md.
"""

import argparse
import json
import statistics
import time

from minillm.backend import np
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.distributed.mpi import world


def time_allreduce(ranks, n_floats, repeats):
    """Median seconds of one Allreduce of n_floats float32 values, after one untimed warm-up."""
    array = np.ones(n_floats, dtype=np.float32)
    ranks.allreduce_sum(array)
    seconds = []
    for _ in range(repeats):
        ranks.barrier()
        t0 = time.perf_counter()
        ranks.allreduce_sum(array)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--max-mb", type=float, default=64.0, help="largest array in MB (train.py's GPT: 3.2 MB of "
                                                              "gradient; the 6-layer, 384-wide GPT: 43 MB)")
    p.add_argument("--repeats", type=int, default=20, help="timed Allreduces per size (the median is reported)")
    p.add_argument("--json", help="also append the results to this JSON-lines file")
    args = p.parse_args(argv)
    ranks = world()
    sizes, n = [], 1024
    while n * 4 <= args.max_mb * 2**20:
        sizes.append(n)
        n *= 4
    rows = []
    for n in sizes:
        seconds = time_allreduce(ranks, n, args.repeats)
        nbytes = 4 * n
        bus = 2 * (ranks.size - 1) / ranks.size * nbytes / seconds
        rows.append({"ranks": ranks.size, "bytes": nbytes, "seconds": seconds, "algorithm_gb_s": nbytes / seconds / 1e9,
                     "bus_gb_s": bus / 1e9})
        if ranks.is_writer:
            print(f"{nbytes / 2**20:10.3f} MB {1e6 * seconds:10.1f} us  algorithm {nbytes / seconds / 1e9:6.2f} GB/s"
                  f"  bus {bus / 1e9:6.2f} GB/s  ({ranks.size} ranks)", flush=True)
    if args.json and ranks.is_writer:
        with open(args.json, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


if __name__ == "__main__":
    run_main(main)
