"""The alpha-beta cost model of data and tensor parallelism: `python -m minillm.tools.scaling_model`.

A ring all-reduce of n bytes over p ranks sends 2 (p - 1) messages one after
another, each of n / p bytes, so it takes

    T(n, p) = 2 (p - 1) alpha + 2 (p - 1) / p * n * beta

with alpha the latency of one message and beta the seconds per byte of a
link. `--fit FILE` fits alpha and beta to allreduce_bench's JSON lines (least
squares of T against n); the predictions use the stated network (--alpha-us,
--link-gb-s), by default one 200 Gb/s InfiniBand link per GPU.

Data parallelism (weak scaling: every rank keeps its batch): a step is the
compute of one rank, 6 N tokens / flops, plus the gradient's all-reduce
(N values of --grad-bytes), of which backward (two thirds of the compute)
can hide up to --overlap. Tensor parallelism (Megatron-LM: one model split
over p ranks, the same batch): compute / p, plus four all-reduces of the
activations (tokens x width values) per layer per step (two forward, two
backward), and p may not exceed the attention heads.
"""

import argparse
import json

from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter


def ring_allreduce_seconds(n_bytes, p, alpha, beta):
    """T(n, p) = 2 (p - 1) alpha + 2 (p - 1) / p n beta; 0 for one rank."""
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n_bytes * beta


def fit_alpha_beta(rows):
    """(alpha, beta) minimising the squared error of T = k alpha + x beta over allreduce_bench's rows,
    with k = 2 (p - 1) messages and x = 2 (p - 1) / p n bytes through each link (the normal equations)."""
    ks = [2 * (r["ranks"] - 1) for r in rows]
    xs = [2 * (r["ranks"] - 1) / r["ranks"] * r["bytes"] for r in rows]
    ts = [r["seconds"] for r in rows]
    skk, skx, sxx = sum(k * k for k in ks), sum(k * x for k, x in zip(ks, xs)), sum(x * x for x in xs)
    skt, sxt = sum(k * t for k, t in zip(ks, ts)), sum(x * t for x, t in zip(xs, ts))
    det = skk * sxx - skx * skx
    return (skt * sxx - skx * sxt) / det, (skk * sxt - skx * skt) / det


def data_parallel(p, args, alpha, beta):
    """(step seconds, efficiency) of p data-parallel ranks."""
    compute = 6 * args.params * args.tokens / (args.tflops * 1e12)
    comm = ring_allreduce_seconds(args.params * args.grad_bytes, p, alpha, beta)
    step = compute + max(0.0, comm - args.overlap * compute * 2 / 3)
    return step, compute / step


def tensor_parallel(p, args, alpha, beta):
    """(step seconds, efficiency) of one model split over p ranks, or None past the heads."""
    if p > args.heads:
        return None
    compute = 6 * args.params * args.tokens / (args.tflops * 1e12)
    comm = 4 * args.layers * ring_allreduce_seconds(args.tokens * args.width * args.act_bytes, p, alpha, beta)
    step = compute / p + comm
    return step, compute / p / step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--fit", help="allreduce_bench JSON lines: print the fitted alpha and beta")
    p.add_argument("--alpha-us", type=float, default=5.0, help="the network's latency per message, microseconds")
    p.add_argument("--link-gb-s", type=float, default=25.0, help="each rank's link, GB/s (200 Gb/s InfiniBand: 25)")
    p.add_argument("--params", type=float, default=124e6, help="parameters (GPT-2 small)")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--tokens", type=float, default=8 * 1024, help="tokens per rank per step (batch 8 x 1024)")
    p.add_argument("--tflops", type=float, default=400.0, help="sustained TFLOP/s of one GPU (H100 bf16 at 40%%)")
    p.add_argument("--grad-bytes", type=float, default=4.0, help="bytes per gradient value (float32: 4)")
    p.add_argument("--act-bytes", type=float, default=2.0, help="bytes per activation value (bf16: 2)")
    p.add_argument("--overlap", type=float, default=1.0, help="share of backward that hides the all-reduce (0-1)")
    args = p.parse_args(argv)
    if args.fit:
        with open(args.fit, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        alpha, beta = fit_alpha_beta(rows)
        print(f"fitted to {len(rows)} measurements: alpha {alpha * 1e6:.1f} us, 1 / beta {1 / beta / 1e9:.2f} GB/s")
    alpha, beta = args.alpha_us * 1e-6, 1 / (args.link_gb_s * 1e9)
    print(f"network: alpha {args.alpha_us} us, {args.link_gb_s} GB/s a link; {args.params / 1e6:.0f}M parameters, "
          f"{args.tokens:.0f} tokens a rank, {args.tflops:.0f} TFLOP/s a GPU")
    print(f"{'ranks':>6} {'DP step ms':>11} {'DP eff.':>8} {'TP step ms':>11} {'TP eff.':>8}")
    results = []
    for k in range(11):
        ranks = 2 ** k
        dp = data_parallel(ranks, args, alpha, beta)
        tp = tensor_parallel(ranks, args, alpha, beta)
        results.append({"ranks": ranks, "dp": dp, "tp": tp})
        tp_text = f"{1000 * tp[0]:11.2f} {100 * tp[1]:7.1f}%" if tp else f"{'-':>11} {'-':>8}"
        print(f"{ranks:6d} {1000 * dp[0]:11.2f} {100 * dp[1]:7.1f}% {tp_text}")
    return results


if __name__ == "__main__":
    run_main(main)
