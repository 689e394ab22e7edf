"""Benchmark: training and encoding speed of BPE and WordPiece on real corpora.

    MINILLM_DATA=../shared/data python -m minillm.tools.tokenizer_bench

BPE is trained twice: with the incremental pair counts of merges.learn_merges and
with merges.learn_merges_naive, which recounts every pair at every merge. The naive
run on IMDB would take hours, so it runs a few merges and is extrapolated:
time = pre-tokenization + (time per merge) x merges.
Encoding is timed with the per-word cache and without it (every word merged anew).
"""

import argparse
import itertools
import time

from minillm.cli.errors import run_main
from minillm.data.corpora import imdb, tinyshakespeare
from minillm.tokenizers.bpe import BPETokenizer
from minillm.tokenizers.merges import learn_merges_naive
from minillm.tokenizers.wordpiece import WordPieceTokenizer


def seconds(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def naive_first(n):
    """A learner that stops the naive one after n merges."""
    return lambda words, merged_id: itertools.islice(learn_merges_naive(words, merged_id), n)


def bpe_training(name, texts, vocab_size, naive_merges):
    t_fast, tok = seconds(lambda: BPETokenizer.train(texts, vocab_size))
    print(f"BPE train {name}, vocab {vocab_size}: incremental {t_fast:.1f} s", flush=True)
    n_merges = vocab_size - 257
    if naive_merges >= n_merges:
        t_naive, slow = seconds(lambda: BPETokenizer.train(texts, vocab_size, learner=learn_merges_naive))
        same = slow.merges == tok.merges
        print(f"BPE train {name}, vocab {vocab_size}: naive recount {t_naive:.1f} s (same merges: {same})")
    else:
        t_zero, _ = seconds(lambda: BPETokenizer.train(texts, vocab_size, learner=naive_first(0)))
        t_some, slow = seconds(lambda: BPETokenizer.train(texts, vocab_size, learner=naive_first(naive_merges)))
        estimate = t_zero + (t_some - t_zero) / naive_merges * n_merges
        same = slow.merges == tok.merges[:naive_merges]
        print(f"BPE train {name}, vocab {vocab_size}: naive recount ~{estimate:.0f} s, extrapolated from "
              f"{naive_merges} merges in {t_some - t_zero:.1f} s after {t_zero:.1f} s of pre-tokenization "
              f"(same first merges: {same})")
    return tok


def bpe_encoding(tok, text):
    mb = len(text.encode("utf-8")) / 1e6
    t_cached, ids = seconds(lambda: tok.encode(text))
    words = tok.pattern.findall(text)
    t_plain, _ = seconds(lambda: [tok.merge_by_rank([tok.byte_id[b] for b in w.encode("utf-8")]) for w in words])
    print(f"BPE encode {mb:.1f} MB of IMDB test reviews: {mb / t_cached:.2f} MB/s with the word cache "
          f"(cold at start), {mb / t_plain:.2f} MB/s without; {len(text.encode('utf-8')) / len(ids):.2f} bytes/token")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    parser.add_argument("--naive-merges", type=int, default=8, help="naive merges run on IMDB before extrapolating")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="time on this leading fraction of each corpus (a quick check of the command)")
    args = parser.parse_args(argv)
    shakespeare = tinyshakespeare(args.data_dir)
    shakespeare = shakespeare[:round(args.fraction * len(shakespeare))]
    bpe_training(f"tinyshakespeare ({len(shakespeare):,} characters)", shakespeare, 512, naive_merges=512)
    imdb_train = [text for text, _ in imdb("train", args.data_dir)]
    imdb_train = imdb_train[:round(args.fraction * len(imdb_train))]
    tok = bpe_training(f"IMDB train ({len(imdb_train):,} reviews)", imdb_train, 4096, naive_merges=args.naive_merges)
    test_reviews = imdb("test", args.data_dir)[:2000]
    test_text = "\n".join(text for text, _ in test_reviews[:round(args.fraction * len(test_reviews))])
    bpe_encoding(tok, test_text)
    t_wp, wp = seconds(lambda: WordPieceTokenizer.train(imdb_train, 8192))
    print(f"WordPiece train IMDB train, vocab 8192: {t_wp:.1f} s")
    mb = len(test_text.encode("utf-8")) / 1e6
    t_enc, _ = seconds(lambda: wp.encode(test_text))
    print(f"WordPiece encode {mb:.1f} MB of IMDB test reviews (with offsets): {mb / t_enc:.2f} MB/s")


if __name__ == "__main__":
    run_main(main)
