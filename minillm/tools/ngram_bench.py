"""Benchmark of the n-gram models: build time, queries/s, perplexity; optionally against KenLM.

    python -m minillm.tools.ngram_bench                       # 5-gram, WikiText-2 and IMDB
    python -m minillm.tools.ngram_bench --orders 2 3 4 5 --kenlm path/to/kenlm/build/bin [--arpa]

Training and test text: WikiText-2 valid.txt / test.txt (train.txt is not in the
data folder) and the IMDB train / test reviews, one review a line. With
--kenlm, the same lines are written to a temporary folder, `lmplz -o N
--skip_symbols` builds the model and `query` scores the test text; the table
shows both perplexities. --arpa also checks the interchange both ways: KenLM's
query on our ARPA file, and our model read from lmplz's ARPA file.
"""

import argparse
import os
import re
import subprocess
import tempfile
import time

from minillm.cli.errors import run_main
from minillm.data.corpora import imdb, wikitext2
from minillm.models.arpa import read_arpa, write_arpa
from minillm.models.ngram import train_ngram


def corpora(names):
    """name -> (training lines, test lines)."""
    out = {}
    if "wikitext-2" in names:
        out["wikitext-2"] = (wikitext2("valid"), wikitext2("test"))
    if "imdb" in names:
        out["imdb"] = ([text for text, _ in imdb("train")], [text for text, _ in imdb("test")])
    return out


def kenlm_perplexity(kenlm, arpa, test_file):
    """(ppl with OOVs, ppl without) from `query -v summary`."""
    with open(test_file, encoding="utf-8") as f:
        report = subprocess.run([os.path.join(kenlm, "query"), "-v", "summary", arpa], stdin=f,
                                capture_output=True, text=True, check=True).stdout
    found = dict(re.findall(r"Perplexity (including|excluding) OOVs:\s*(\S+)", report))
    return float(found["including"]), float(found["excluding"])


def kenlm_build(kenlm, order, train_file, arpa, folder):
    with open(train_file, encoding="utf-8") as f, open(arpa, "w", encoding="utf-8") as out:
        subprocess.run([os.path.join(kenlm, "lmplz"), "-o", str(order), "--skip_symbols", "-S", "20%",
                        "-T", folder], stdin=f, stdout=out, stderr=subprocess.DEVNULL, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[5])
    parser.add_argument("--datasets", nargs="+", default=["wikitext-2", "imdb"], choices=["wikitext-2", "imdb"])
    parser.add_argument("--smoothing", default="modified-kneser-ney")
    parser.add_argument("--kenlm", help="folder with KenLM's lmplz and query binaries, to compare with")
    parser.add_argument("--arpa", action="store_true", help="with --kenlm: check the ARPA interchange both ways")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ngram_bench_") as folder:  # text and ARPA files for KenLM
        run(args, folder)


def run(args, folder):
    """Print one markdown row per dataset and order; KenLM's files go to `folder`."""
    print("| data | order | train tokens | build s | test tokens | queries/s | ppl | ppl w/o OOV |"
          + (" lmplz ppl | lmplz w/o OOV | rel. diff |" if args.kenlm else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|---|---|" if args.kenlm else ""))
    for name, (train, test) in corpora(args.datasets).items():
        train_file, test_file = os.path.join(folder, f"{name}.train"), os.path.join(folder, f"{name}.test")
        if args.kenlm:
            for path, lines in ((train_file, train), (test_file, test)):
                with open(path, "w", encoding="utf-8") as f:
                    f.writelines(line + "\n" for line in lines)
        for order in args.orders:
            start = time.perf_counter()
            model = train_ngram(train, order, args.smoothing)
            built = time.perf_counter() - start
            start = time.perf_counter()
            result = model.evaluate(test)
            seconds = time.perf_counter() - start
            row = (f"| {name} | {order} | {model.train_tokens} | {built:.1f} | {result['tokens']} | "
                   f"{result['tokens'] / seconds:,.0f} | {result['perplexity']:.2f} | "
                   f"{result['perplexity_without_oov']:.2f} |")
            if args.kenlm:
                arpa = os.path.join(folder, f"{name}.{order}.arpa")
                kenlm_build(args.kenlm, order, train_file, arpa, folder)
                theirs, theirs_known = kenlm_perplexity(args.kenlm, arpa, test_file)
                row += f" {theirs:.2f} | {theirs_known:.2f} | {result['perplexity'] / theirs - 1:+.2e} |"
                if args.arpa:
                    ours = os.path.join(folder, f"{name}.{order}.ours.arpa")
                    write_arpa(model, ours)
                    row += (f" query on our ARPA: {kenlm_perplexity(args.kenlm, ours, test_file)[0]:.4f};"
                            f" we on lmplz's ARPA: {read_arpa(arpa).evaluate(test)['perplexity']:.4f} |")
            print(row, flush=True)


if __name__ == "__main__":
    run_main(main)
