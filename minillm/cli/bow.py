"""`python -m minillm.cli.bow --task sentiment|news|intent`: the bag-of-n-grams baselines' dev/test scores."""

import argparse

from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.tasks.bow import run


def main(argv=None):
    parser = argparse.ArgumentParser(description="Bag-of-n-grams baselines (naive Bayes, softmax regression)",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--task", required=True, choices=["sentiment", "news", "intent"])
    parser.add_argument("--dataset", help="sentiment: sst2 (default) or chnsenticorp")
    parser.add_argument("--data-dir", default=None, help="data directory (default $MINILLM_DATA or ./data)")
    parser.add_argument("--min-count", type=int, default=1, help="drop n-grams seen fewer times in train")
    args = parser.parse_args(argv)
    run(args.task, args.data_dir, args.min_count, args.dataset)


if __name__ == "__main__":
    run_main(main)
