"""Pretrain a language model: `python train.py` (GPT, characters, Tiny Shakespeare by default).

The defaults are nanoGPT's CPU recipe for shakespeare_char: 4 layers, 4 heads,
128 channels, 64-token blocks, batch 12, 2000 iterations of AdamW with lr 1e-3
cosine-decayed to 1e-4 after 100 warmup steps. Every setting is a flag; a
`--config file.json` of flag names sets defaults that explicit flags override.
`--resume` continues the run in --out-dir exactly where its checkpoint left it.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time

from minillm import backend
from minillm.backend import host_rng, np
from minillm.data.corpora import CORPORA, lm_corpus
from minillm.data.lm_data import build_tokenizer, document_separator, lm_streams, sentence_documents, tokenizer_digest
from minillm.models.arpa import write_arpa
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining, start_local
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.models.ngram import SMOOTHINGS, train_ngram
from minillm.models.xlnet import XLNetConfig, XLNetLMHeadModel
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.tasks.causal_lm import FULL_VAL_TOKENS, CausalLMTask
from minillm.tasks.masked_lm import MaskedLMTask, SpecialTokens
from minillm.tasks.permutation_lm import PermutationLMTask
from minillm.tasks.tbptt import TruncatedBPTTTask
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.trainer import NonFiniteLoss, TrainConfig, Trainer

DEFAULTS = dict(  # nanoGPT's shakespeare_char on the CPU
    n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
    max_iters=2000, lr_decay_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
    weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20,
)
MODEL_DEFAULTS = {  # what differs from DEFAULTS for each --model
    "gpt": {},
    "ngram": {},
    # bert and xlnet: about 15 minutes here. No dropout: so short a run underfits, and dropout
    # 0.1 only slowed it (masked-token loss 6.50 against 6.47 at step 300; lr 1e-3 beat 5e-4 and 3e-3).
    # BERT: batches of 8, as many steps as the time allows: with the local start, 500 steps of 8
    # (82 s) reached 6.30 where 250 steps of 16 (73 s) reached 6.50
    "bert": dict(data="imdb", tokenizer="wordpiece", vocab_size=8192, n_layer=2, n_head=2, n_embd=128,
                 block_size=128, batch_size=8, dropout=0.0, max_iters=7000, lr_decay_iters=7000,
                 warmup_iters=100, learning_rate=1e-3, min_lr=1e-4, beta2=0.999, weight_decay=0.01,
                 eval_interval=500, eval_iters=20, sample_tokens=0, out_dir="out/bert-imdb"),
    "lstm": dict(n_layer=2, n_embd=128, hidden_size=256, batch_size=32, learning_rate=2e-3, min_lr=2e-4,
                 weight_decay=0.0, dropout=0.0),
    "xlnet": dict(data="imdb", tokenizer="wordpiece", vocab_size=8192, n_layer=2, n_head=2, n_embd=128,
                  block_size=128, batch_size=16, dropout=0.0, max_iters=2500, lr_decay_iters=2500,
                  warmup_iters=100, learning_rate=1e-3, min_lr=1e-4, beta2=0.999, weight_decay=0.01,
                  eval_interval=250, eval_iters=20, sample_tokens=0, out_dir="out/xlnet-imdb"),
}


def parse_bool(text):
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file of settings (keys are flag names with underscores)")
    run = p.add_argument_group("run")
    run.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default="gpt",
                     help="gpt (GPT-2 architecture), lstm (embedding, LSTM, linear), ngram (counts, smoothed) "
                          "bert (masked LM + next-sentence prediction, on IMDB with WordPiece by default) "
                          "or xlnet (permutation LM, two-stream attention, on IMDB with WordPiece by default)")
    run.add_argument("--objective", choices=["mlm+nsp", "mlm"], default="mlm+nsp", help="bert's objective")
    run.add_argument("--whole-word-mask", type=parse_bool, default=True,
                     help="bert: choose a word's WordPiece pieces together (false: each piece on its own)")
    run.add_argument("--data", choices=CORPORA, default="tinyshakespeare")
    run.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    run.add_argument("--tokenizer", choices=["char", "bpe", "wordpiece"], default="char")
    run.add_argument("--vocab-size", type=int, default=4096, help="for bpe and wordpiece, trained on the data")
    run.add_argument("--out-dir", default="out/shakespeare-char", help="run directory: checkpoint/, metrics.jsonl")
    run.add_argument("--resume", action="store_true", help="continue from --out-dir's checkpoint")
    run.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    run.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    add_threads_argument(run)  # gpt, bert and xlnet split their batches; the lstm carries state between them
    run.add_argument("--seed", type=int, default=1337)
    run.add_argument("--sample-tokens", type=int, default=500, help="tokens sampled at the end (0: none)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    model = p.add_argument_group("model")
    for name in ("n_layer", "n_head", "n_embd", "block_size"):
        model.add_argument("--" + name.replace("_", "-"), type=int, default=DEFAULTS[name])
    model.add_argument("--hidden-size", type=int, default=256, help="LSTM state size")
    model.add_argument("--tie-weights", action="store_true", help="LSTM: decoder tied to the embedding")
    model.add_argument("--order", type=int, default=5, help="n-gram order")
    model.add_argument("--smoothing", choices=SMOOTHINGS, default="modified-kneser-ney", help="n-gram smoothing")
    model.add_argument("--add-k", type=float, default=1.0, help="k of --smoothing add-k")
    model.add_argument("--save-arpa", action="store_true", help="n-gram: also write <out-dir>/model.arpa")
    model.add_argument("--relative-bias", type=parse_bool, default=True,
                       help="xlnet: add a learned attention score per head and relative offset (false: absolute "
                            "positions only)")
    model.add_argument("--local-start", type=parse_bool, default=True,
                       help="bert: start positions and attention so that each head reads a neighbour "
                            "(models.bert_pretraining.start_local; false: BERT's random start)")
    model.add_argument("--dropout", type=float, default=DEFAULTS["dropout"])
    opt = p.add_argument_group("optimisation")
    for field in dataclasses.fields(TrainConfig):
        if field.name == "seed":
            continue
        default = DEFAULTS.get(field.name, field.default)
        kind = parse_bool if isinstance(field.default, bool) else type(field.default)
        opt.add_argument("--" + field.name.replace("_", "-"), type=kind, default=default)
    opt.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    opt.add_argument("--eval-iters", type=int, default=DEFAULTS["eval_iters"], help="batches per split per eval")
    return p


def parse_args(argv=None):
    """Flags over --config over the resumed run's settings over the model's defaults."""
    parser = build_parser()
    parser.set_defaults(**MODEL_DEFAULTS[parser.parse_args(argv).model])
    args = parser.parse_args(argv)
    layers = []
    if args.resume:
        state_path = os.path.join(args.out_dir, "checkpoint", "trainer_state.json")
        if not os.path.exists(state_path):
            parser.error(f"--resume: no checkpoint at {state_path}")
        with open(state_path, encoding="utf-8") as f:
            layers.append((state_path, json.load(f)["run_config"]))
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            layers.append((args.config, json.load(f)))
    known = {a.dest for a in parser._actions}
    for source, settings in layers:
        unknown = sorted(set(settings) - known)
        if unknown:
            parser.error(f"{source}: unknown settings {unknown}")
        parser.set_defaults(**{k: v for k, v in settings.items() if k not in ("resume", "config", "out_dir")})
    return parser.parse_args(argv)


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


def text_lines(text):
    """A text's lines: a final newline closes the last line rather than opening an empty one."""
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


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


def run_bert(args):
    """BERT pretraining: documents of sentences, masked tokens, next-sentence pairs."""
    if args.data == "tinyshakespeare":
        sys.exit("error: --model bert needs a corpus of documents for next-sentence pairs: --data imdb or wikitext-2")
    tokenizer = build_tokenizer(args.tokenizer, args.data, args.vocab_size, args.data_dir, not args.no_progress)
    if not isinstance(tokenizer, WordPieceTokenizer):
        sys.exit("error: --model bert uses --tokenizer wordpiece ([CLS], [SEP], [MASK] and ## pieces)")
    train_docs, val_docs = lm_corpus(args.data, args.data_dir)
    key = f"{args.data}-{tokenizer_digest(tokenizer)}"
    train_docs = sentence_documents(tokenizer, train_docs, key + "-train")
    val_docs = sentence_documents(tokenizer, val_docs, key + "-val")
    print(f"{args.data}: wordpiece vocabulary of {tokenizer.vocab_size}, {len(train_docs):,} train / "
          f"{len(val_docs):,} held-out documents")
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.n_embd, num_hidden_layers=args.n_layer,
                     num_attention_heads=args.n_head, intermediate_size=4 * args.n_embd,
                     hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
                     max_position_embeddings=args.block_size, pad_token_id=tokenizer.pad_id)
    model = BertForPreTraining(cfg, seed=args.seed, dtype=args.dtype)
    if args.local_start:
        start_local(model.bert)
    special = SpecialTokens(tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    is_continuation = [t.startswith("##") for t in tokenizer.itos] if args.whole_word_mask else None
    task = MaskedLMTask(BatchParallel(model, args.threads), train_docs, val_docs, args.batch_size, args.block_size,
                        special, tokenizer.vocab_size, is_continuation, nsp=args.objective == "mlm+nsp",
                        eval_iters=args.eval_iters, seed=args.seed, grad_accum=args.grad_accum)
    return tokenizer, model, task


def build_model_and_task(args, vocab_size, train_ids, val_ids):
    if args.model == "xlnet":
        cfg = XLNetConfig(vocab_size=vocab_size, d_model=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
                          d_inner=4 * args.n_embd, dropout=args.dropout, max_position_embeddings=args.block_size,
                          relative_bias=args.relative_bias)
        model = XLNetLMHeadModel(cfg, seed=args.seed, dtype=args.dtype)
        return model, PermutationLMTask(BatchParallel(model, args.threads), train_ids, val_ids, args.batch_size,
                                        args.block_size, eval_iters=args.eval_iters, seed=args.seed)
    if args.model == "lstm":
        cfg = LSTMConfig(vocab_size=vocab_size, n_embd=args.n_embd, hidden_size=args.hidden_size,
                         num_layers=args.n_layer, dropout=args.dropout, tie_weights=args.tie_weights)
        model = LSTMLM(cfg, seed=args.seed, dtype=args.dtype)
        return model, TruncatedBPTTTask(model, train_ids, val_ids, args.batch_size, args.block_size,
                                        args.eval_iters, args.grad_accum)
    cfg = GPTConfig(vocab_size=vocab_size, n_positions=args.block_size, n_embd=args.n_embd,
                    n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=args.dropout,
                    embd_pdrop=args.dropout, attn_pdrop=args.dropout)
    model = GPT(cfg, seed=args.seed, dtype=args.dtype)
    return model, CausalLMTask(BatchParallel(model, args.threads), train_ids, val_ids, args.batch_size,
                               args.block_size, args.eval_iters, args.seed)


def main(argv=None):
    args = parse_args(argv)
    backend.use(args.device)
    backend.reuse_freed_memory()  # activations are freed and allocated again every step
    if args.model == "ngram":
        return run_ngram(args)
    if args.model == "bert":
        tokenizer, model, task = run_bert(args)
    else:
        tokenizer, train_ids, val_ids = lm_streams(args.tokenizer, args.data, args.vocab_size, args.data_dir,
                                                   progress=not args.no_progress)
        print(f"{args.data}: {args.tokenizer} vocabulary of {tokenizer.vocab_size}, "
              f"{len(train_ids):,} train / {len(val_ids):,} val tokens")
        model, task = build_model_and_task(args, tokenizer.vocab_size, train_ids, val_ids)
    print(f"{args.model}: {model.num_parameters():,} parameters, {args.device}, {args.dtype}")
    train_cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                               if hasattr(args, f.name)})
    run_config = {k: v for k, v in vars(args).items() if k not in ("resume", "config")}
    trainer = Trainer(model, task, train_cfg, args.out_dir, extra_files=tokenizer.save, run_config=run_config,
                      progress=not args.no_progress, threads=args.threads)
    try:
        history = trainer.run(resume=args.resume)
    except NonFiniteLoss as err:
        sys.exit(f"error: {err}")

    full = task.full_val_loss()
    trainer.log({"iter": trainer.iter, "full_val_loss": full, "train_seconds": trainer.train_seconds})
    bits = f", {full / math.log(2):.3f} bits/char" if args.tokenizer == "char" else ""
    print(f"iter {trainer.iter}: validation loss over {task.full_val_scope} {full:.4f} nats/token, "
          f"perplexity {math.exp(full):.2f}{bits}")
    if args.sample_tokens and hasattr(model, "generate"):
        start = backend.to_device([document_separator(tokenizer) or tokenizer.encode("\n")])
        out = model.generate(start, args.sample_tokens, temperature=0.8, top_k=200,
                             rng=backend.default_rng(args.seed))
        sample = tokenizer.decode(backend.to_host(out[0]).tolist())
        with open(os.path.join(args.out_dir, "samples.txt"), "w", encoding="utf-8") as f:
            f.write(sample)
        print("---- sample ----" + sample)
    return history


if __name__ == "__main__":
    main()
