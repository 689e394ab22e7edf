"""`python train.py --model ngram`: count, smooth, score the held-out tokens and sample, the statistical baseline."""

import json
import math
import os
import time

from minillm.backend import host_rng, np
from minillm.cli.errors import UsageError
from minillm.data.corpora import lm_corpus
from minillm.data.datasets import text_lines
from minillm.data.lm_data import build_tokenizer, document_separator, lm_streams
from minillm.models.arpa import write_arpa
from minillm.models.ngram import train_ngram
from minillm.tasks.causal_lm import FULL_VAL_TOKENS


def ngram_sentences(args):
    """(tokenizer, train sentences, validation sentences) for the n-gram model, as lists of token strings.

    Characters: a text line is a sentence and </s> stands for its newline, so
    the tokens counted are the characters, as for the neural models. Subwords:
    a document is a sentence and </s> stands for the separator token, read from
    the token streams the neural models train on. Validation keeps the sentences
    within the first FULL_VAL_TOKENS tokens (one </s> each): the tokens the
    neural models are scored on.
    """
    if args.tokenizer == "char":
        tokenizer = build_tokenizer("char", args.data, args.vocab_size, args.data_dir, not args.no_progress)
        train_docs, val_docs = lm_corpus(args.data, args.data_dir)
        train, val = ([list(line) for doc in docs for line in text_lines(doc)] for docs in (train_docs, val_docs))
    else:
        tokenizer, *streams = lm_streams(args.tokenizer, args.data, args.vocab_size, args.data_dir,
                                         not args.no_progress)
        separator = document_separator(tokenizer)[0]
        documents = (np.split(ids, np.flatnonzero(ids == separator) + 1) for ids in streams)  # each ends in one
        train, val = ([[str(i) for i in doc[:-1].tolist()] for doc in docs if len(doc)] for docs in documents)
    return tokenizer, train, leading_sentences(val, FULL_VAL_TOKENS)


def leading_sentences(sentences, max_tokens):
    """The first sentences whose tokens, with one </s> each, number at most max_tokens."""
    total = 0
    for k, sentence in enumerate(sentences):
        total += len(sentence) + 1
        if total > max_tokens:
            return sentences[:k]
    return sentences


def run_ngram(args):
    """Count, smooth, evaluate on the validation text, sample: the statistical baseline."""
    if args.save_arpa and args.tokenizer == "char":  # refused before the counting, not after it
        raise UsageError("--save-arpa: ARPA separates words by blanks, so a character model (whose tokens include "
                         "the space) has no ARPA form; use it with --tokenizer bpe or wordpiece")
    tokenizer, train, val = ngram_sentences(args)
    start = time.perf_counter()
    model = train_ngram(train, args.order, args.smoothing, args.add_k)
    seconds = time.perf_counter() - start
    result = model.evaluate(val)
    os.makedirs(args.out_dir, exist_ok=True)
    record = {"model": f"{args.order}-gram {args.smoothing}", "train_seconds": seconds,
              "ngrams": sum(len(keys) for keys in model.keys), "train_tokens": model.train_tokens,
              "full_val_loss": result["cross_entropy"], **{"val_" + k: v for k, v in result.items()}}
    with open(os.path.join(args.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if args.save_arpa:
        write_arpa(model, os.path.join(args.out_dir, "model.arpa"))
    bits = f", {result['cross_entropy'] / math.log(2):.3f} bits/char" if args.tokenizer == "char" else ""
    print(f"{record['model']}: {record['ngrams']:,} n-grams from {model.train_tokens:,} tokens in {seconds:.1f} s; "
          f"validation loss {result['cross_entropy']:.4f} nats/token, perplexity {result['perplexity']:.2f}{bits} "
          f"({result['oov']} of {result['tokens']:,} tokens out of vocabulary)")
    if args.sample_tokens:
        tokens = model.sample(host_rng(args.seed), max_tokens=args.sample_tokens)
        record["sample"] = "".join(tokens) if args.tokenizer == "char" else tokenizer.decode(
            [int(t) for t in tokens if t.isdigit()])
        print("---- sample ----\n" + record["sample"])
    return [record]
