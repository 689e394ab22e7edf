"""Parameter-efficient fine-tuning, timed: `python -m minillm.tools.peft_bench`.

Builds the task model once per method (full fine-tuning, LoRA, BitFit,
bottleneck adapters, prompt and prefix tuning) from the same pretrained
checkpoint (all-MiniLM-L6-v2 by default) and times the fine-tuning step
finetune.py runs (forward with dropout, cross-entropy, backward, AdamW with
clipping; the batch split over --threads) on the same random token batches,
in turns (tools/bench.py's timed_in_turns), so a machine whose speed drifts
slows every method alike. Prints, for each: trainable parameters (count and %),
ms per step (median), speed-up over full fine-tuning, and peak array memory
of a first step with the model and its optimizer built inside the count
(tracemalloc: parameters, gradients, AdamW's moments, activations).
"""

import argparse
import os
import tracemalloc

from minillm import backend
from minillm.backend import host_rng, to_device
from minillm.checkpoint import load_safetensors, read_json
from minillm.cli.errors import run_main
from minillm.cli.finetune_args import checkpoint_dir
from minillm.cli.settings import HelpFormatter
from minillm.models.auto import CLASSIFIERS, TOKEN_CLASSIFIERS, build_model
from minillm.models.pretrained import resolve_init
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.peft.adapter import add_bottleneck
from minillm.peft.bitfit import add_bitfit
from minillm.peft.lora import add_lora
from minillm.peft.prefix import add_prefix_tuning
from minillm.peft.prompt import add_prompt_tuning
from minillm.tools.bench import timed_in_turns
from minillm.training.optim import AdamW

METHODS = {
    "full": lambda m, a: m,
    "lora": lambda m, a: add_lora(m, a.lora_r, 2 * a.lora_r, a.lora_dropout, ["query", "value"]),
    "lora-all-linear": lambda m, a: add_lora(m, a.lora_r, 2 * a.lora_r, a.lora_dropout, ["all-linear"]),
    "bitfit": lambda m, a: add_bitfit(m),
    "adapter": lambda m, a: add_bottleneck(m, a.adapter_size),
    "prompt": lambda m, a: add_prompt_tuning(m, a.num_virtual_tokens),
    "prefix": lambda m, a: add_prefix_tuning(m, a.num_virtual_tokens),
}


def build(method, args, source, tokens):
    """(model, step function) of one method: the task model from `source`, its PEFT method, AdamW."""
    config = read_json(os.path.join(source, "config.json"))
    kind = TOKEN_CLASSIFIERS if args.task == "ner" else CLASSIFIERS
    model = build_model(kind, config, [f"LABEL_{i}" for i in range(args.labels)], 0, 0.1, 0)
    model.load_backbone(load_safetensors(os.path.join(source, "model.safetensors")))
    METHODS[method](model, args)
    parallel = BatchParallel(model, args.threads)
    opt = AdamW(model, 1e-4, weight_decay=0.01, threads=parallel.threads)
    rng = host_rng(0)
    B, T = args.batch_size, args.max_length
    mask = to_device(rng.integers(1, 2, (B, T)))

    def step():
        ids = to_device(rng.integers(1000, tokens, (B, T)))
        labels = to_device(rng.integers(0, args.labels, (B, T) if args.task == "ner" else (B,)))
        logits = parallel(ids, mask)  # (B, labels) or, tagging, (B, T, labels)
        loss, cache = cross_entropy_forward(logits.reshape(-1, args.labels), labels.reshape(-1))
        parallel.backward(cross_entropy_backward(1.0, cache).reshape(logits.shape))
        opt.step(max_grad_norm=1.0)
        opt.zero_grad()

    return model, step


def peak_memory(method, args, source, tokens):
    """Peak bytes of arrays while the model is built, loaded, wrapped and takes its first step."""
    tracemalloc.start()
    _, step = build(method, args, source, tokens)
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--init", default="minilm", help="pretrained BERT or GPT-2 directory, or minilm (default)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--task", choices=["sentiment", "ner"], default="sentiment",
                   help="sequence classification (2 labels) or token classification (9 labels, CoNLL's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-dropout", type=float, default=0.1, help="as finetune.py's (0: no mask is drawn)")
    p.add_argument("--adapter-size", type=int, default=64)
    p.add_argument("--num-virtual-tokens", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5, help="turns of every method; the median is reported")
    p.add_argument("--iters", type=int, default=2, help="timed steps per turn (after 3 warm-up steps)")
    add_threads_argument(p)
    args = p.parse_args(argv)
    args.labels = 9 if args.task == "ner" else 2
    backend.reuse_freed_memory()
    source = checkpoint_dir(resolve_init(args.init))
    tokens = read_json(os.path.join(source, "config.json"))["vocab_size"]
    peaks = {m: peak_memory(m, args, source, tokens) for m in args.methods}
    built = {m: build(m, args, source, tokens) for m in args.methods}
    seconds = dict(zip(args.methods, timed_in_turns([s for _, s in built.values()], args.rounds, args.iters)))
    base = seconds.get("full")
    print(f"{args.task}, batch {args.batch_size} x {args.max_length} tokens, {args.threads} threads, "
          f"{args.rounds} rounds of {args.iters} steps each")
    print(f"{'method':16s} {'trainable':>12s} {'%':>7s} {'ms/step':>8s} {'speed-up':>8s} {'peak MB':>8s}")
    rows = []
    for m, (model, _) in built.items():
        n, total = model.num_parameters(trainable_only=True), model.num_parameters()
        row = {"method": m, "trainable": n, "total": total, "ms_per_step": 1000 * seconds[m],
               "speedup": base / seconds[m] if base else None, "peak_mb": peaks[m] / 2**20}
        print(f"{m:16s} {n:12,d} {100 * n / total:6.2f}% {row['ms_per_step']:8.0f} "
              f"{row['speedup'] or 0:7.2f}x {row['peak_mb']:8.0f}", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    run_main(main)
