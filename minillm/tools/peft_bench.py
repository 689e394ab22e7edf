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

--torch also times the same methods in PyTorch with Hugging Face's
transformers and peft, from the same checkpoint, on the same batch shapes,
in the same turns: the reference the speed-ups compare with. BitFit there
unfreezes the biases; PEFT has no bottleneck adapters, and its prefix tuning
needs past key values, which transformers' BERT no longer takes. torch,
transformers and peft are imported only then; minillm never requires them.
"""

import argparse
import importlib.util
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


TORCH_METHODS = ("full", "lora", "lora-all-linear", "bitfit", "prompt")


def torch_build(method, args, source):
    """The step of `method` in PyTorch: transformers' BERT task model from `source`, PEFT's method, AdamW."""
    import torch
    import transformers
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    transformers.logging.set_verbosity_error()  # the head is new by design: no load report
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ner = args.task == "ner"
    task_class = transformers.BertForTokenClassification if ner else transformers.BertForSequenceClassification
    model = task_class.from_pretrained(source, num_labels=args.labels)
    task_type = TaskType.TOKEN_CLS if ner else TaskType.SEQ_CLS
    if method.startswith("lora"):
        targets = "all-linear" if method == "lora-all-linear" else ["query", "value"]
        model = get_peft_model(model, LoraConfig(task_type=task_type, r=args.lora_r, lora_alpha=2 * args.lora_r,
                                                 lora_dropout=args.lora_dropout, target_modules=targets))
    elif method == "prompt":
        model = get_peft_model(model, PromptTuningConfig(task_type=task_type,
                                                         num_virtual_tokens=args.num_virtual_tokens))
    elif method == "bitfit":
        for name, p in model.named_parameters():
            p.requires_grad = name.endswith("bias") or name.startswith("classifier.")
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    B, T = args.batch_size, args.max_length
    mask = torch.ones((B, T), dtype=torch.long)
    tokens = model.config.vocab_size

    def step():
        ids = torch.randint(1000, tokens, (B, T), generator=gen)
        labels = torch.randint(0, args.labels, (B, T) if ner else (B,), generator=gen)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return sum(p.numel() for p in trained), step


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
    p.add_argument("--torch", action="store_true",
                   help="also time PyTorch with transformers and peft (installed apart: they are not requirements)")
    add_threads_argument(p)
    args = p.parse_args(argv)
    if args.torch and any(importlib.util.find_spec(n) is None for n in ("torch", "transformers", "peft")):
        raise SystemExit("error: --torch needs PyTorch, transformers and peft (`pip install torch transformers peft`, "
                         "in an environment of its own); minillm itself never does")
    args.labels = 9 if args.task == "ner" else 2
    backend.reuse_freed_memory()
    source = checkpoint_dir(resolve_init(args.init))
    tokens = read_json(os.path.join(source, "config.json"))["vocab_size"]
    peaks = {m: peak_memory(m, args, source, tokens) for m in args.methods}
    built = {m: build(m, args, source, tokens) for m in args.methods}
    steps = [s for _, s in built.values()]
    torch_methods = [m for m in args.methods if m in TORCH_METHODS] if args.torch else []
    torch_built = {m: torch_build(m, args, source) for m in torch_methods}
    timed = timed_in_turns(steps + [s for _, s in torch_built.values()], args.rounds, args.iters)
    seconds = dict(zip(args.methods, timed))
    torch_seconds = dict(zip(torch_methods, timed[len(steps):]))
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
    if torch_built:
        import torch
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, the same turns")
        print(f"{'method':16s} {'trainable':>12s} {'ms/step':>8s} {'speed-up':>8s} {'minillm faster':>14s}")
        for m, (n, _) in torch_built.items():
            row = next(r for r in rows if r["method"] == m)
            row.update(torch_trainable=n, torch_ms_per_step=1000 * torch_seconds[m],
                       torch_speedup=torch_seconds["full"] / torch_seconds[m] if "full" in torch_seconds else None)
            print(f"{m:16s} {n:12,d} {row['torch_ms_per_step']:8.0f} {row['torch_speedup'] or 0:7.2f}x "
                  f"{torch_seconds[m] / seconds[m]:13.2f}x", flush=True)
    return rows


if __name__ == "__main__":
    run_main(main)
