"""Few-shot learning curves: each method trained on K examples per class, five draws, scored on a full split.

    python -m minillm.cli.fewshot --task sentiment --method zero-shot logreg setfit --k 8 16 --draws 5
    python -m minillm.cli.fewshot --task news intent --method logreg --k 16 --augment none eda

A method is a function predict_fn(train_texts, train_labels, test_texts, names, task, seed, encoder)
-> a list of predicted labels, where encoder is the run's tasks/sentence_embeddings.EmbeddingCache of
the frozen --init model (.embed(texts), .model, .tokenizer, .batch_size, .max_length, .progress);
METHODS maps the names --method accepts to them, one line a method. zero-shot reads no examples and
runs once a task, in the K = 0 column. The draws are data/fewshot.py's (seeds DRAW_SEEDS); --augment
eda adds EDA's copies (tasks/augmentation.py) to each draw's texts before the method sees them.

<out>/results.jsonl gets one line a (task, method, K, draw, augment): accuracy, seconds, what was
read and the settings used. A line already there is not run again, so a run can be stopped and
continued, and several commands can fill one directory (with the same settings: a line's key does
not hold them). From all its lines <out>/results.md gets a table per task (rows:
methods, columns: K, mean +- sd over the draws; zero-shot first; full-data fine-tuning as the ceiling)
and, with matplotlib installed (requirements-plot.txt), <out>/learning-curves.png.
"""

import argparse
import functools
import json
import os
import time

from tqdm import tqdm

from minillm.backend import to_host
from minillm.cli.errors import UsageError, run_main
from minillm.cli.settings import HelpFormatter, positive
from minillm.data.fewshot import DRAW_SEEDS, K_VALUES, fewshot_task
from minillm.models.auto import load_encoder
from minillm.models.pretrained import resolve_init
from minillm.tasks import metrics
from minillm.tasks.augmentation import NeighbourTable, eda
from minillm.tasks.cloze import DEFAULT_MLM, pet_predict
from minillm.tasks.fewshot_report import write_report
from minillm.tasks.in_context import DEFAULT_GPT, icl_predict
from minillm.tasks.sentence_embeddings import EmbeddingCache
from minillm.tasks.setfit import SetFitConfig, frozen_logreg, setfit
from minillm.tasks.zero_shot import zero_shot
from minillm.tokenizers import load_tokenizer

METHODS = {
    "zero-shot": zero_shot,
    "logreg": frozen_logreg,
    "setfit": setfit,
    "pet": pet_predict,
    "icl": icl_predict,
}
ZERO_SHOT = ("zero-shot",)  # methods that read no labelled example: run once a task, at K = 0
DEFAULT_METHODS = ("zero-shot", "logreg", "setfit")  # pet and icl read a model trained here first


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--task", nargs="+", choices=["sentiment", "news", "intent"], required=True)
    p.add_argument("--method", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    p.add_argument("--k", nargs="+", type=int, default=[k for k in K_VALUES if k], help="examples per class")
    p.add_argument("--draws", type=positive(int), default=len(DRAW_SEEDS),
                   help=f"draws per K: the first of the seeds {DRAW_SEEDS}")
    p.add_argument("--augment", nargs="+", choices=["none", "eda"], default=["none"],
                   help="each K-shot draw as drawn, and/or with EDA's copies added")
    p.add_argument("--n-aug", type=positive(int), default=4, help="EDA: augmented copies of each text")
    p.add_argument("--alpha", type=float, default=0.1, help="EDA: the rate of words changed")
    p.add_argument("--eval-limit", type=positive(int), help="score the first N texts of the evaluation split only")
    p.add_argument("--min-words", type=int, default=0,
                   help="draw only training texts of at least this many words (SST-2's train split is mostly "
                        "fragments of sentences; dev is whole sentences)")
    p.add_argument("--init", default="minilm",
                   help="the sentence encoder: 'minilm', 'mpnet' (all-mpnet-base-v2) or a BERT or MPNet directory")
    p.add_argument("--max-length", type=positive(int), default=128, help="tokens of a text when it is embedded")
    p.add_argument("--batch-size", type=positive(int), default=32, help="texts a batch when embedding")
    s = p.add_argument_group("setfit")
    s.add_argument("--setfit-pairs", type=positive(int), default=SetFitConfig.pairs_per_example,
                   help="pairs made from each example, half of its own label")
    s.add_argument("--setfit-max-pairs", type=positive(int), default=SetFitConfig.max_pairs)
    s.add_argument("--setfit-batch-size", type=positive(int), default=SetFitConfig.batch_size)
    s.add_argument("--setfit-lr", type=positive(float), default=SetFitConfig.learning_rate)
    s.add_argument("--setfit-max-length", type=positive(int), default=SetFitConfig.max_length)
    p.add_argument("--mlm", default=DEFAULT_MLM, help="pet: the masked LM (`python train.py --model bert`'s)")
    p.add_argument("--gpt", default=DEFAULT_GPT, help="icl: the GPT (`python train.py --data imdb --tokenizer bpe`'s)")
    p.add_argument("--out", default="out/fewshot", help="directory of results.jsonl, results.md and the plot")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--no-progress", action="store_true")
    return p


def method_table(args):
    """name -> predict_fn, with the command's settings bound."""
    config = SetFitConfig(pairs_per_example=args.setfit_pairs, max_pairs=args.setfit_max_pairs,
                          batch_size=args.setfit_batch_size, learning_rate=args.setfit_lr,
                          max_length=args.setfit_max_length)
    return {**METHODS, "setfit": functools.partial(METHODS["setfit"], config=config),
            "pet": functools.partial(METHODS["pet"], model_dir=args.mlm),
            "icl": functools.partial(METHODS["icl"], model_dir=args.gpt)}


def planned_runs(args):
    """(task, method, K, seed, augment) of every run the command asks for, in order."""
    runs = []
    for task in args.task:
        for method in args.method:
            if method in ZERO_SHOT:
                runs.append((task, method, 0, None, "none"))
                continue
            for k in args.k:
                for seed in DRAW_SEEDS[:args.draws]:
                    runs.extend((task, method, k, seed, augment) for augment in args.augment)
    return runs


def read_results(path):
    """The lines of a results.jsonl (none if it does not exist), each checked to be a JSON object."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not a JSON object ({err.msg})") from None
    return rows


def run_key(row):
    return row["task"], row["method"], row["k"], row["seed"], row["augment"]


def settings(args, method, augment):
    """The flags a result line depends on (its key does not hold them: one directory, one set of settings)."""
    names = ["init", "max_length"] + (["setfit_" + n for n in ("pairs", "max_pairs", "batch_size", "lr", "max_length")]
                                      if method == "setfit" else []) + (["n_aug", "alpha"] if augment == "eda" else []) \
        + {"pet": ["mlm"], "icl": ["gpt"]}.get(method, []) + (["min_words"] if args.min_words else [])
    return {name: getattr(args, name) for name in names}


def run_one(task_data, method, k, seed, augment, args, encoder, methods, table):
    """One result line: the method trained on draw `seed` of K per class (augmented or not), scored."""
    texts, labels = task_data.draw(k, seed) if k else ([], [])
    if augment == "eda":
        texts, labels = eda(texts, labels, table(), args.n_aug, args.alpha, seed)
    start = time.perf_counter()
    pred = methods[method](texts, labels, task_data.eval_texts, task_data.names, task_data.task, seed, encoder)
    seconds = time.perf_counter() - start
    return {"task": task_data.task, "method": method, "k": k, "seed": seed, "augment": augment,
            "accuracy": metrics.accuracy(task_data.eval_labels, pred),
            "macro_f1": metrics.macro_f1(task_data.eval_labels, pred, labels=range(len(task_data.names))),
            "seconds": round(seconds, 2), "train_texts": len(texts), "eval_split": task_data.eval_split,
            "eval_texts": len(task_data.eval_texts), "note": task_data.note,
            "settings": settings(args, method, augment)}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if any(k < 1 for k in args.k):
        raise UsageError(f"--k takes examples per class >= 1 (zero-shot is K = 0 by itself), got {args.k}")
    if args.draws > len(DRAW_SEEDS):
        raise UsageError(f"--draws {args.draws}: there are {len(DRAW_SEEDS)} fixed draws, {DRAW_SEEDS}")
    for method, flag, directory, how in (("pet", "--mlm", args.mlm, "python train.py --model bert"),
                                         ("icl", "--gpt", args.gpt, "python train.py --data imdb --tokenizer bpe")):
        if method in args.method and not os.path.exists(os.path.join(directory, "config.json")):
            raise UsageError(f"--method {method} reads a model in {flag} {directory}, which has no config.json: "
                             f"train one with `{how}` or name another")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.jsonl")
    done = {run_key(row) for row in read_results(path)}
    todo = [run for run in planned_runs(args) if run not in done]
    print(f"{len(todo)} runs to do, {len(done)} already in {path}")
    if todo:
        run_all(todo, args, path)
    write_report(read_results(path), args.out)


def run_all(todo, args, path):
    """Each (task, method, K, seed, augment) run in turn, its line appended to results.jsonl as it ends."""
    directory = resolve_init(args.init)
    tokenizer = load_tokenizer(directory)
    encoder = EmbeddingCache(load_encoder(directory).eval(), tokenizer, args.batch_size,
                             args.max_length, progress=not args.no_progress)

    @functools.lru_cache(maxsize=1)
    def table():  # EDA's neighbours: the encoder's word-piece embeddings, built when first needed
        return NeighbourTable.from_vocabulary(tokenizer.itos, to_host(encoder.model.embeddings.word_embeddings
                                                                      .weight.data))

    methods, tasks = method_table(args), {}
    for task, method, k, seed, augment in tqdm(todo, desc="few-shot runs", disable=args.no_progress):
        if task not in tasks:
            tasks[task] = fewshot_task(task, args.data_dir, args.eval_limit, args.min_words)
        row = run_one(tasks[task], method, k, seed, augment, args, encoder, methods, table)
        with open(path, "a", encoding="utf-8") as f:  # one whole line a run: a stopped run loses only the current one
            f.write(json.dumps(row) + "\n")
        tqdm.write(f"{task} {method} K={k} seed={seed} augment={augment}: accuracy {100 * row['accuracy']:.2f}% "
                   f"in {row['seconds']:.1f} s")


if __name__ == "__main__":
    run_main(main)
