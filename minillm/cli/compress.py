"""Make a trained model smaller: `python -m minillm.cli.compress quantize|prune|student ...`.

    python -m minillm.cli.compress quantize --model out/finetune-sentiment-sst2-minilm/best --out DIR
        int8 weights (per output channel) and int8 activations (dynamic, per row), embeddings included;
        --activations none: weight-only int8; --weights int4: weight-only int4 in groups of --group-size.
    python -m minillm.cli.compress prune --model DIR --out DIR --heads 0.5     (or --sparsity 0.5)
        removes the half of the attention heads whose gate gradient on training texts is smallest; --sparsity
        zeros the smallest weights instead (efficiency/prune.py).
    python -m minillm.cli.compress student --teacher DIR --out DIR --layers 0 2 4 [--vocab 4500]
        a smaller BERT built from a teacher's weights, to fine-tune with
        `finetune.py --init DIR --teacher TEACHER_DIR` (knowledge distillation); --vocab keeps the word
        pieces the task's training texts need most.

The quantized directory keeps config.json (with `quantization_config`), model.safetensors and the tokenizer,
so `finetune.py --predict --out-dir` (with the directory as its best/), `sample.py --out-dir` and
`python -m minillm.tools.compress_bench` load it like any checkpoint. What each setting costs and buys:
docs/RESULTS.md#compression.
"""

import argparse

from minillm.backend import np, to_device
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.data.labelled import classification_data
from minillm.efficiency.distill import keep_layers, kept_pieces, narrow_student, trim_vocabulary
from minillm.efficiency.prune import (head_importance, least_important_heads, magnitude_prune, prunable_weights,
                                      prune_heads)
from minillm.efficiency.quantize import quantize_checkpoint
from minillm.models.auto import load_model, max_positions
from minillm.nn.layers import Conv1D, Embedding, Linear
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.nn.quantized import QuantizationScheme
from minillm.tasks.batching import length_batches, pad_batch
from minillm.tasks.classification import encode_all
from minillm.tokenizers import load_tokenizer


def quantize(args):
    activations = None if args.activations == "none" or args.weights == "int4" else args.activations  # int4: weights
    scheme = QuantizationScheme(args.weights, activations,
                                args.group_size, not args.float_embeddings, tuple(args.keep_float))
    model = quantize_checkpoint(args.model, args.out, scheme)
    kept = sorted(name for name, m in model.named_modules() if isinstance(m, (Linear, Conv1D, Embedding)))
    print(f"quantized ({scheme.mode}, embeddings {'float' if args.float_embeddings else scheme.weights}) "
          f"{args.model} -> {args.out}" + (f"; kept in float: {', '.join(kept)}" if kept else ""))


def student(args):
    teacher = load_model(args.teacher)
    if args.layers:
        model = keep_layers(teacher, args.layers)
    else:
        model = narrow_student(teacher, args.hidden_size, args.num_layers, args.num_heads, args.intermediate_size)
    tokenizer = load_tokenizer(args.teacher)
    if args.vocab:
        texts = classification_data(args.task, None, args.data_dir)[0]["train"][0]
        model, tokenizer = trim_vocabulary(model, tokenizer, kept_pieces(tokenizer, texts, args.vocab))
    model.save_pretrained(args.out, extra_files=tokenizer.save)
    n, total = model.num_parameters(), teacher.num_parameters()
    print(f"student {args.out}: {n:,} parameters, {n / total:.1%} of the teacher's {total:,} "
          f"({model.config.num_hidden_layers} layers of width {model.config.hidden_size}, "
          f"{model.config.vocab_size:,} word pieces); fine-tune it with "
          f"python finetune.py --init {args.out} --teacher {args.teacher}")


def importance_batches(model, directory, args):
    """Batches (ids, mask, labels) of the --importance-examples training texts after the first --importance-skip
    (those a model fine-tuned on the first N has not seen; dev stays for scoring)."""
    texts, labels = classification_data(args.task, None, args.data_dir)[0]["train"]
    lo, hi = args.importance_skip, args.importance_skip + args.importance_examples
    encoded = encode_all(load_tokenizer(directory), texts[lo:hi], min(128, max_positions(model.config)))
    pad = model.pad_token_id
    return [(*pad_batch([encoded[i] for i in rows], pad), to_device([labels[lo + i] for i in rows]))
            for rows in length_batches(encoded, args.batch_size)]


def classification_loss_and_backward(model, batch):
    loss, cache = cross_entropy_forward(model(batch[0], batch[1]), batch[2])
    model.backward(cross_entropy_backward(1.0, cache))


def prune(args):
    model = load_model(args.model)
    if args.sparsity is not None:
        fractions = magnitude_prune(model, args.sparsity, args.scope)
        sizes = {name: int(p.data.size) for name, p in prunable_weights(model)}
        zeros = sum(fractions[n] * sizes[n] for n in sizes) / sum(sizes.values())
        print(f"magnitude pruning ({args.scope}): {zeros:.1%} of the {len(sizes)} weight matrices' entries zero, "
              f"{min(fractions.values()):.1%} to {max(fractions.values()):.1%} of each")
    if args.heads:
        scores = head_importance(model, importance_batches(model, args.model, args), classification_loss_and_backward)
        total = int((~np.isnan(scores)).sum())
        heads = least_important_heads(scores, int(round(args.heads * total)))
        prune_heads(model, heads)
        print(f"removed {sum(map(len, heads.values()))} of {total} heads: "
              + ", ".join(f"layer {i}: {h}" for i, h in sorted(heads.items())))
    model.save_pretrained(args.out, extra_files=load_tokenizer(args.model).save)
    print(f"pruned model ({model.num_parameters():,} parameters) -> {args.out}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m minillm.cli.compress", description=__doc__,
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize", help="post-training quantization of a saved model", formatter_class=HelpFormatter)
    q.add_argument("--model", required=True, help="a float checkpoint directory (config.json, model.safetensors, "
                                                   "tokenizer), e.g. a fine-tuned run's best/")
    q.add_argument("--out", required=True, help="the quantized checkpoint directory to write")
    q.add_argument("--weights", choices=["int8", "int4"], default="int8",
                   help="int8: one scale per output channel; int4: one scale per group of --group-size inputs")
    q.add_argument("--activations", choices=["int8", "none"], default="int8",
                   help="int8: each matrix product's input quantized per row at each call (int8 weights only); "
                        "none: weight-only (always, with int4 weights)")
    q.add_argument("--group-size", type=int, default=64, help="int4: inputs sharing one scale")
    q.add_argument("--float-embeddings", action="store_true", help="leave the embedding tables in float32")
    q.add_argument("--keep-float", nargs="*", default=[], metavar="PATTERN",
                   help="layers left in float32, by dotted name (fnmatch patterns: classifier 'bert.pooler.*')")
    q.set_defaults(run=quantize)
    s = sub.add_parser("student", help="a smaller BERT built from a teacher's weights, for distillation",
                       formatter_class=HelpFormatter)
    s.add_argument("--teacher", required=True, help="a BERT directory: a fine-tuned classifier's best/ or a backbone")
    s.add_argument("--out", required=True, help="the student's directory (a BERT backbone and the tokenizer)")
    s.add_argument("--layers", type=int, nargs="+",
                   help="keep these encoder layers of the teacher, at its width (e.g. 0 2 4: MiniLM's even layers); "
                        "without it, a narrow student of the sizes below")
    s.add_argument("--hidden-size", type=int, default=128,
                   help="narrow student: its width; its embeddings are the teacher's projected on their top "
                        "principal directions, its layers fresh")
    s.add_argument("--num-layers", type=int, default=4, help="narrow student: encoder layers")
    s.add_argument("--num-heads", type=int, default=2, help="narrow student: attention heads")
    s.add_argument("--intermediate-size", type=int, default=512, help="narrow student: feed-forward width")
    s.add_argument("--vocab", type=int, help="keep only this many word pieces: the special and single-character "
                                             "ones, then the most frequent in --task's training texts")
    s.add_argument("--task", default="sentiment", choices=["sentiment", "news", "intent"],
                   help="--vocab: whose training texts (all of them) count the pieces")
    s.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    s.set_defaults(run=student)
    r = sub.add_parser("prune", help="remove attention heads by importance, or zero the smallest weights",
                       formatter_class=HelpFormatter)
    r.add_argument("--model", required=True, help="a fine-tuned BERT classifier directory (e.g. a run's best/)")
    r.add_argument("--out", required=True, help="the pruned model's directory")
    r.add_argument("--heads", type=float, help="fraction of the attention heads to remove, least important first "
                                               "(Michel et al. 2019; at least one stays in each layer)")
    r.add_argument("--task", default="sentiment", choices=["sentiment", "news", "intent"],
                   help="whose training texts score the heads")
    r.add_argument("--importance-examples", type=int, default=512, help="training texts that score the heads")
    r.add_argument("--importance-skip", type=int, default=4000,
                   help="skip this many first training texts (those the model was fine-tuned on)")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--sparsity", type=float, help="fraction of the Linear weights to set to zero, smallest first")
    r.add_argument("--scope", choices=["global", "layer"], default="global",
                   help="with --sparsity: the smallest over all matrices, or the same fraction of each")
    r.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    r.set_defaults(run=prune)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    run_main(main)
