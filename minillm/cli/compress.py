"""Make a trained model smaller: `python -m minillm.cli.compress quantize|student ...`.

    python -m minillm.cli.compress quantize --model out/finetune-sentiment-sst2-minilm/best --out DIR
        int8 weights (per output channel) and int8 activations (dynamic, per row), embeddings included;
        --activations none: weight-only int8; --weights int4: weight-only int4 in groups of --group-size.
    python -m minillm.cli.compress student --teacher DIR --out DIR --layers 0 2 4
        a smaller BERT built from a teacher's weights, to fine-tune with
        `finetune.py --init DIR --teacher TEACHER_DIR` (knowledge distillation).

The quantized directory keeps config.json (with `quantization_config`), model.safetensors and the tokenizer,
so `finetune.py --predict --out-dir` (with the directory as its best/), `sample.py --out-dir` and
`python -m minillm.tools.compress_bench` load it like any checkpoint. What each setting costs and buys:
docs/RESULTS.md#compression.
"""

import argparse

from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.efficiency.distill import keep_layers, narrow_student
from minillm.efficiency.quantize import quantize_checkpoint
from minillm.models.auto import load_model
from minillm.nn.quantized import QuantizationScheme
from minillm.tokenizers import load_tokenizer


def quantize(args):
    activations = None if args.activations == "none" or args.weights == "int4" else args.activations  # int4: weights
    scheme = QuantizationScheme(args.weights, activations,
                                args.group_size, not args.float_embeddings, tuple(args.keep_float))
    model = quantize_checkpoint(args.model, args.out, scheme)
    kept = sorted({name for name, m in model.named_modules()
                   if type(m).__name__ in ("Linear", "Conv1D", "Embedding")})
    print(f"quantized ({scheme.mode}, embeddings {'float' if args.float_embeddings else scheme.weights}) "
          f"{args.model} -> {args.out}" + (f"; kept in float: {', '.join(kept)}" if kept else ""))


def student(args):
    teacher = load_model(args.teacher)
    if args.layers:
        model = keep_layers(teacher, args.layers)
    else:
        model = narrow_student(teacher, args.hidden_size, args.num_layers, args.num_heads, args.intermediate_size)
    model.save_pretrained(args.out, extra_files=load_tokenizer(args.teacher).save)
    n, total = model.num_parameters(), teacher.num_parameters()
    print(f"student {args.out}: {n:,} parameters, {n / total:.1%} of the teacher's {total:,} "
          f"({model.config.num_hidden_layers} layers of width {model.config.hidden_size}); fine-tune it with "
          f"python finetune.py --init {args.out} --teacher {args.teacher}")


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
    s.set_defaults(run=student)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    run_main(main)
