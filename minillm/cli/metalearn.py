"""Meta-learn a sentence encoder in few-shot episodes and test it on classes it never saw.

    python -m minillm.cli.metalearn                          prototypical networks on all-MiniLM-L6-v2
    python -m minillm.cli.metalearn --method proto-maml      first-order Proto-MAML (head-only inner loop)
    python -m minillm.cli.metalearn --max-iters 0            the frozen encoder: baselines only

Meta-training draws N-way K-shot episodes from four SNIPS intents and AG News's four topics
(data/episodes.py says why); the test episodes come from SNIPS's test utterances of the three
held-out intents (PlayMusic, SearchCreativeWork, SearchScreeningEvent), 3-way, at each of
--test-shots, --test-episodes of them. The encoder's top --train-layers layers train (a step through
all six costs twice as much on two cores; 0 trains everything); evaluations during training
score episodes of the held-out intents' dev utterances, and the final test reads the model as it ends
(not the best of those evaluations). Every test classifier reads the same embeddings: the method's
own scores, the nearest prototype by cosine and the nearest support example (1-NN). Results print
as JSON and go to <out-dir>/results.json.
"""

import argparse
import json
import os

from minillm.checkpoint import write_json
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter, add_train_config_defaults, positive, train_config
from minillm.data.episodes import EpisodeSampler, meta_split
from minillm.models.auto import load_encoder
from minillm.models.pretrained import resolve_init
from minillm.tasks.meta_learning import METHODS, EpisodeScorer, MetaLearningTask, episode_accuracies, mean_ci95
from minillm.tasks.sentence_embeddings import mean_pooled
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import Trainer

TEST_CLASSIFIERS = ("scorer", "prototype-cosine", "1-nn")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--method", choices=METHODS, default="protonet")
    p.add_argument("--init", default="minilm", help="'minilm', 'mpnet' or a Hugging Face BERT or MPNet directory")
    p.add_argument("--out-dir", help="run directory (default: out/metalearn-<method>)")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--no-progress", action="store_true")
    e = p.add_argument_group("episodes")
    e.add_argument("--n-way", type=positive(int), default=3, help="classes in a meta-training episode")
    e.add_argument("--k-shot", type=positive(int), default=5, help="support examples a class, in training")
    e.add_argument("--n-query", type=positive(int), default=5, help="query examples a class, in training")
    e.add_argument("--max-length", type=positive(int), default=32, help="tokens a text is cut to")
    e.add_argument("--inner-steps", type=int, default=5, help="proto-maml: SGD steps of the head on the support set")
    e.add_argument("--inner-lr", type=float, default=0.1, help="proto-maml: the inner loop's learning rate")
    t = p.add_argument_group("test")
    t.add_argument("--test-shots", type=positive(int), nargs="+", default=[5, 1])
    t.add_argument("--test-queries", type=positive(int), default=15, help="query examples a class")
    t.add_argument("--test-episodes", type=positive(int), default=1000)
    t.add_argument("--eval-episodes", type=positive(int), default=200, help="episodes of each evaluation in training")
    o = p.add_argument_group("optimisation")
    o.add_argument("--max-iters", type=int, default=300, help="episodes of meta-training (0: test the frozen encoder)")
    o.add_argument("--max-seconds", type=float, default=0.0, help="training-time budget in seconds (0: none)")
    o.add_argument("--train-layers", type=int, default=2,
                   help="the top encoder layers that train (0: all, embeddings included)")
    o.add_argument("--learning-rate", type=positive(float), default=3e-5)
    o.add_argument("--min-lr", type=float, default=3e-6)
    o.add_argument("--warmup-iters", type=int, default=20)
    o.add_argument("--weight-decay", type=float, default=0.01)
    o.add_argument("--eval-interval", type=positive(int), default=100)
    o.add_argument("--log-interval", type=positive(int), default=10)
    o.add_argument("--seed", type=int, default=1337)
    add_train_config_defaults(p)
    return p


def encode_split(tokenizer, split, max_length):
    texts, labels, groups = split
    return [tokenizer.encode_plus(t, max_length=max_length, truncation=True).input_ids for t in texts], labels, groups


def test_scores(model, tokenizer, scorer, held_out, args):
    """{"<k>-shot": {classifier: {"accuracy", "ci95"}}} over args.test_episodes 3-way episodes of held_out."""
    encoded, labels, groups = held_out
    embeddings = mean_pooled(model, encoded, 64, tokenizer.pad_id).astype("float64")  # (N, C) host
    n_way = len(groups[0])
    out = {}
    for k in args.test_shots:
        sampler = EpisodeSampler(labels, groups, n_way, k, args.test_queries, seed=args.seed + 2)
        out[f"{k}-shot"] = {}
        for name in TEST_CLASSIFIERS:
            mean, half = mean_ci95(episode_accuracies(embeddings, sampler, args.test_episodes, name, scorer))
            out[f"{k}-shot"][args.method if name == "scorer" else name] = {"accuracy": round(mean, 4),
                                                                         "ci95": round(half, 4)}
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.out_dir = args.out_dir or os.path.join("out", f"metalearn-{args.method}")
    directory = resolve_init(args.init)
    tokenizer = load_tokenizer(directory)
    model = load_encoder(directory)
    splits, names = meta_split(args.data_dir)
    dev, _ = meta_split(args.data_dir, test_split="dev")
    train, test = (encode_split(tokenizer, splits[s], args.max_length) for s in ("train", "test"))
    scorer = EpisodeScorer(args.method, args.inner_steps, args.inner_lr)
    result = {"method": args.method, "init": args.init, "iters": 0, "train_seconds": 0.0,
              "classes": {"meta-train": [names[c] for g in train[2] for c in g],
                          "meta-test": [names[c] for c in test[2][0]]}}
    if args.max_iters > 0:
        task = MetaLearningTask(model, scorer, train, encode_split(tokenizer, dev["test"], args.max_length),
                                args.n_way, args.k_shot, args.n_query, tokenizer.pad_id, args.seed,
                                args.eval_episodes, eval_way=len(test[2][0]), train_layers=args.train_layers)
        cfg = train_config(args, lr_decay_iters=args.max_iters, metric_for_best="val_episode_accuracy",
                           greater_is_better=True)
        trainer = Trainer(model, task, cfg, args.out_dir, extra_files=tokenizer.save, run_config=vars(args),
                          progress=not args.no_progress)
        trainer.run()
        result.update(iters=trainer.iter, train_seconds=round(trainer.train_seconds, 1))
    result["test"] = test_scores(model, tokenizer, scorer, test, args)
    os.makedirs(args.out_dir, exist_ok=True)
    write_json(os.path.join(args.out_dir, "results.json"), result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_main(main)
