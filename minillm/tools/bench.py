"""Benchmark the GPT train step: `python -m minillm.tools.bench`.

Prints ms/step, tokens/s and peak memory of one full step (forward, loss,
backward, clipping, AdamW) at train.py's default size and at a larger one
(`--sizes gpt2`: GPT-2 small, 124M parameters at block 1024, for the GPU).
If PyTorch happens to be installed, the same model written the way nanoGPT
writes it (eager mode, scaled_dot_product_attention, torch.optim.AdamW) is
timed in the same process on the same shapes and device (CUDA with
`--device gpu`), in turns with minillm, and the ratio of the medians is
printed. `--precision float16` times both in mixed precision (minillm's
float16 products; PyTorch's autocast). PyTorch is never a requirement of minillm.
"""

import argparse
import importlib.util
import json
import os
import statistics
import time
import tracemalloc

from minillm import backend
from minillm.backend import host_rng, synchronize, to_device
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter, add_precision_argument
from minillm.models.gpt import GPT, GPTConfig
from minillm.nn.functional import set_matmul_precision
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.tasks.causal_lm import ar_loss, ar_loss_backward
from minillm.training.optim import AdamW

SIZES = {  # vocabulary 65: Tiny Shakespeare's characters; 50257: GPT-2's BPE
    "default": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=65),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8, vocab_size=65),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=8, vocab_size=50257),
}


def time_steps(step, warmup, iters):
    for _ in range(warmup):
        step()
    synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize()
    return (time.perf_counter() - t0) / iters


def peak_step_memory(step):
    """Peak bytes of arrays alive during one step: tracemalloc on the CPU (NumPy reports
    its buffers to it), the memory pool on the GPU."""
    if backend.on_gpu():
        return backend.peak_memory_bytes()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def minillm_step(size, threads=1, seed=0):
    """(step, threads used): one train step as train.py runs it, the batch split over threads
    (see minillm.nn.parallel; one on the GPU)."""
    V = size["vocab_size"]
    cfg = GPTConfig(vocab_size=V, n_positions=size["block_size"], n_embd=size["n_embd"],
                    n_layer=size["n_layer"], n_head=size["n_head"])
    model = BatchParallel(GPT(cfg, seed=seed), threads)
    opt = AdamW(model.model, 1e-4, (0.9, 0.99), weight_decay=0.1, threads=model.threads)
    rng = host_rng(seed)
    B, T = size["batch_size"], size["block_size"]

    def step():
        x = to_device(rng.integers(0, V, (B, T)))
        y = to_device(rng.integers(0, V, (B, T)))
        loss, cache = ar_loss(model(x), y)
        model.backward(ar_loss_backward(1.0, cache))
        opt.step(max_grad_norm=1.0)
        opt.zero_grad()

    return step, model.threads


def torch_step(size, device="cpu", precision="float32", seed=0):
    """nanoGPT's model in PyTorch eager mode (minillm.torch_reference), built here only for the timing;
    on "cuda" each step ends by waiting for the GPU, as minillm's does when it reads the gradient norm."""
    import contextlib

    import torch
    from torch.nn import functional as F

    from minillm.tools.torch_reference import torch_gpt

    torch.manual_seed(seed)
    T, B, V = size["block_size"], size["batch_size"], size["vocab_size"]
    model = torch_gpt(V, T, size["n_embd"], size["n_layer"], size["n_head"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    mixed = torch.autocast(device, dtype=torch.float16) if precision == "float16" else contextlib.nullcontext()

    def step():
        x = torch.randint(0, V, (B, T), generator=gen).to(device)
        y = torch.randint(0, V, (B, T), generator=gen).to(device)
        with mixed:
            loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        loss.backward()  # no loss scaler: at these few steps from initialisation nothing underflows
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    return step, torch.__version__, torch.get_num_threads()


def timed_in_turns(steps, rounds, iters, pause=0.5):
    """Median seconds per step of each step function, timed in turns: `rounds` rounds of `iters`
    steps of each, so a machine whose speed drifts (shared cores, clocks) slows every side alike.
    The pause before each turn lets the previous side's spinning worker threads (OpenBLAS,
    OpenMP) fall asleep, so that they do not compete with the next."""
    for step in steps:
        for _ in range(3):  # warm-up: first-touch allocations, thread pools
            step()
    seconds = [[] for _ in steps]
    for _ in range(rounds):
        for k, step in enumerate(steps):
            time.sleep(pause)
            seconds[k].append(time_steps(step, 0, iters))
    return [statistics.median(s) for s in seconds]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    p.add_argument("--rounds", type=int, default=5, help="turns of minillm then PyTorch; the median is reported")
    p.add_argument("--iters", type=int, default=6, help="timed steps per turn (after 3 warm-up steps)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    add_precision_argument(p)
    add_threads_argument(p)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch side-by-side timing")
    p.add_argument("--json", help="also append the results to this JSON-lines file")
    args = p.parse_args(argv)
    backend.use(args.device)
    backend.reuse_freed_memory()  # activations are freed and allocated again every step
    set_matmul_precision(args.precision)
    # PyTorch is optional: imported only inside torch_step
    have_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    results = []
    for name in args.sizes:
        size = SIZES[name]
        tokens = size["batch_size"] * size["block_size"]
        step, threads = minillm_step(size, args.threads)
        steps = [step]
        if have_torch:
            reference, version, torch_threads = torch_step(size, "cuda" if backend.on_gpu() else "cpu",
                                                           args.precision)
            steps.append(reference)
        seconds = timed_in_turns(steps, args.rounds, args.iters)
        row = {"size": name, **size, "device": args.device, "precision": args.precision, "threads": threads,
               "ms_per_step": 1000 * seconds[0], "tokens_per_s": tokens / seconds[0],
               "peak_memory_mb": peak_step_memory(step) / 2**20}
        print(f"{name:8s} minillm  {1000 * seconds[0]:8.1f} ms/step {tokens / seconds[0]:9.0f} tokens/s"
              f"   peak memory {row['peak_memory_mb']:.0f} MB ({threads} threads)", flush=True)
        if have_torch:
            row.update(torch_version=version, torch_threads=torch_threads, torch_ms_per_step=1000 * seconds[1],
                       torch_tokens_per_s=tokens / seconds[1], speed_ratio=seconds[1] / seconds[0])
            print(f"{name:8s} pytorch  {1000 * seconds[1]:8.1f} ms/step {tokens / seconds[1]:9.0f} tokens/s"
                  f"   (torch {version}, {torch_threads} threads)\n"
                  f"{name:8s} minillm/pytorch throughput ratio {row['speed_ratio']:.2f}", flush=True)
        results.append(row)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            for row in results:
                f.write(json.dumps(row) + "\n")
    return results


if __name__ == "__main__":
    run_main(main)
