"""Command line: train a tokenizer on a dataset, encode text, decode ids.

    python -m minillm.cli.tokenizer train --data imdb --kind bpe --vocab-size 4096 --out DIR
    python -m minillm.cli.tokenizer encode --tokenizer DIR "Some text"      (or text on stdin)
    python -m minillm.cli.tokenizer decode --tokenizer DIR 464 1110 318     (or ids on stdin)
"""

import argparse
import sys
import time

from minillm.cli.errors import run_main
from minillm.data.corpora import training_texts
from minillm.tokenizers import load_tokenizer
from minillm.tokenizers.bpe import PATTERNS, BPETokenizer
from minillm.tokenizers.char import CharTokenizer
from minillm.tokenizers.wordpiece import WordPieceTokenizer


def train(args):
    texts = training_texts(args.data, args.data_dir)
    start = time.perf_counter()
    if args.kind == "bpe":
        tok = BPETokenizer.train(texts, args.vocab_size, pattern=args.pattern, progress=True)
    elif args.kind == "wordpiece":
        tok = WordPieceTokenizer.train(texts, args.vocab_size, lowercase=not args.cased, progress=True)
    else:
        tok = CharTokenizer.train("".join(texts))
    seconds = time.perf_counter() - start
    tok.save(args.out)
    print(f"{args.kind} tokenizer with {tok.vocab_size} tokens trained on {args.data} in {seconds:.1f} s, "
          f"saved to {args.out}")


def encode(args):
    tok = load_tokenizer(args.tokenizer)
    text = sys.stdin.read() if args.text is None else args.text
    print(" ".join(str(i) for i in tok.encode(text)))


def decode(args):
    tok = load_tokenizer(args.tokenizer)
    words = args.ids if args.ids else sys.stdin.read().split()
    try:
        ids = [int(w) for w in words]
    except ValueError:
        raise ValueError(f"decode: ids must be integers, got {' '.join(words)[:80]!r}") from None
    print(tok.decode(ids))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minillm.cli.tokenizer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="learn a vocabulary from a dataset and save it")
    p.add_argument("--data", required=True, choices=["tinyshakespeare", "imdb", "wikitext-2", "chnsenticorp"])
    p.add_argument("--kind", required=True, choices=["bpe", "wordpiece", "char"])
    p.add_argument("--vocab-size", type=int, default=4096, help="tokens in the vocabulary, special tokens included")
    p.add_argument("--out", required=True, help="directory to write the tokenizer files into")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--pattern", choices=sorted(PATTERNS), default="gpt2",
                   help="BPE pre-tokenization regex (only gpt2 is what Hugging Face's GPT-2 tokenizer uses)")
    p.add_argument("--cased", action="store_true", help="WordPiece: keep case and accents")
    p.set_defaults(run=train)
    p = sub.add_parser("encode", help="print the ids of a text")
    p.add_argument("--tokenizer", required=True, help="directory of a saved tokenizer")
    p.add_argument("text", nargs="?", help="the text (default: read stdin)")
    p.set_defaults(run=encode)
    p = sub.add_parser("decode", help="print the text of ids")
    p.add_argument("--tokenizer", required=True, help="directory of a saved tokenizer")
    p.add_argument("ids", nargs="*", help="the ids (default: read stdin)")
    p.set_defaults(run=decode)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    run_main(main)
