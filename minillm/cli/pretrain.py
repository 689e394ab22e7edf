"""Pretrain a language model: `python train.py` (GPT, characters, Tiny Shakespeare by default).

Each --model starts from its defaults file, configs/<model>.json (GPT's is
nanoGPT's CPU recipe for shakespeare_char: 4 layers, 4 heads, 128 channels,
64-token blocks, batch 12, 2000 iterations of AdamW with lr 1e-3
cosine-decayed to 1e-4 after 100 warmup steps). `--config file.json` and then
the flags override it (see cli/settings.py). `--resume` continues the run in
--out-dir exactly where its checkpoint left it.
"""

import argparse
import math
import os
import sys

from minillm import backend
from minillm.cli.errors import run_main
from minillm.cli.pretrain_ngram import run_ngram
from minillm.cli.settings import (HelpFormatter, add_bucket_argument, add_precision_argument, add_train_config_defaults,
                                  config_path, parse_layered, positive, read_settings, train_config)
from minillm.data.corpora import CORPORA, lm_corpus
from minillm.distributed.model_shards import split_model
from minillm.distributed.mpi import silence_all_but_the_writer, world
from minillm.data.lm_data import build_tokenizer, lm_streams, sentence_documents, tokenizer_digest
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining, start_local
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.models.ngram import SMOOTHINGS
from minillm.models.xlnet import XLNetConfig, XLNetLMHeadModel
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.tasks.causal_lm import FULL_VAL_SCOPE, FULL_VAL_TOKENS, CausalLMTask, sample_text
from minillm.tasks.masked_lm import MaskedLMTask, SpecialTokens
from minillm.tasks.permutation_lm import PermutationLMTask
from minillm.tasks.tbptt import TruncatedBPTTTask
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.trainer import TrainConfig, Trainer, read_trainer_state, resume_directory

DEFAULT_OUT_DIR = "out/shakespeare-char"
MODELS = ("gpt", "lstm", "ngram", "bert", "xlnet")  # each has configs/<model>.json


def parse_bool(text):
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


TUNED = {  # the TrainConfig fields that are flags
    "max_iters": "training steps", "learning_rate": "peak learning rate", "min_lr": "learning rate at the end",
    "warmup_iters": "steps of linear warmup", "lr_decay_iters": "steps of cosine decay (usually max_iters)",
    "weight_decay": "AdamW's decoupled weight decay", "grad_clip": "global gradient-norm clip (0: none)",
    "grad_accum": "micro-batches per step", "eval_interval": "steps between evaluations and checkpoints",
    "log_interval": "steps between loss logs", "max_seconds": "training-time budget in seconds (0: none)"}
POSITIVE = ("max_iters", "learning_rate", "lr_decay_iters", "grad_accum", "eval_interval", "log_interval")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--config", help="JSON file of settings (keys are flag names with underscores)")
    run = p.add_argument_group("run")
    run.add_argument("--model", choices=MODELS, default="gpt",
                     help="gpt (GPT-2 architecture), lstm (embedding, LSTM, linear), ngram (counts, smoothed) "
                          "bert (masked LM + next-sentence prediction, on IMDB with WordPiece by default) "
                          "or xlnet (permutation LM, two-stream attention, on IMDB with WordPiece by default)")
    run.add_argument("--objective", choices=["mlm+nsp", "mlm"], default="mlm+nsp", help="bert's objective")
    run.add_argument("--whole-word-mask", type=parse_bool, default=True,
                     help="bert: choose a word's WordPiece pieces together (false: each piece on its own)")
    run.add_argument("--data", choices=CORPORA, default="tinyshakespeare", help="the corpus")
    run.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    run.add_argument("--tokenizer", choices=["char", "bpe", "wordpiece"], default="char",
                     help="characters, byte-level BPE or WordPiece")
    run.add_argument("--vocab-size", type=positive(int), default=4096,
                     help="for bpe and wordpiece, trained on the data")
    run.add_argument("--out-dir", help="run directory: checkpoint/, metrics.jsonl (default: the model's configs "
                                       f"file's out_dir, else {DEFAULT_OUT_DIR})")
    run.add_argument("--resume", action="store_true", help="continue from --out-dir's checkpoint")
    run.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    run.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    add_precision_argument(run)
    add_bucket_argument(run)
    run.add_argument("--shard-optimizer", action="store_true",
                     help="under mpirun: each rank keeps AdamW's moments for, and updates, its slice of the "
                          "parameters only, then all gather them (ZeRO stage 1)")
    run.add_argument("--tensor-parallel", type=positive(int), default=1,
                     help="under mpirun -n N: split the model's attention heads and MLP hidden units across the N "
                          "ranks instead of the batch (gpt and bert; Megatron-LM's tensor parallelism)")
    add_threads_argument(run)  # gpt, bert and xlnet split their batches; the lstm carries state between them
    run.add_argument("--seed", type=int, default=1337)
    run.add_argument("--sample-tokens", type=int, default=500, help="tokens sampled at the end (0: none)")
    run.add_argument("--full-val-tokens", type=int, default=FULL_VAL_TOKENS,
                     help="held-out tokens of the final score (0: skip it; fewer: a quicker, noisier score)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    model = p.add_argument_group("model")
    for name in ("n_layer", "n_head", "n_embd", "block_size"):
        model.add_argument("--" + name.replace("_", "-"), type=positive(int))
    model.add_argument("--hidden-size", type=positive(int), help="LSTM state size")
    model.add_argument("--tie-weights", action="store_true", help="LSTM: decoder tied to the embedding")
    model.add_argument("--order", type=positive(int), help="n-gram order")
    model.add_argument("--smoothing", choices=SMOOTHINGS, help="n-gram smoothing")
    model.add_argument("--add-k", type=float, default=1.0, help="k of --smoothing add-k")
    model.add_argument("--save-arpa", action="store_true", help="n-gram: also write <out-dir>/model.arpa")
    model.add_argument("--relative-bias", type=parse_bool, default=True,
                       help="xlnet: add a learned attention score per head and relative offset (false: absolute "
                            "positions only)")
    model.add_argument("--local-start", type=parse_bool, default=True,
                       help="bert: start positions and attention so that each head reads a neighbour "
                            "(models.bert_pretraining.start_local; false: BERT's random start)")
    model.add_argument("--dropout", type=float)
    opt = p.add_argument_group("optimisation (a --config file also reaches beta1, beta2, schedule and the other "
                               "TrainConfig fields)")
    for name in TUNED:
        default = getattr(TrainConfig, name)  # where the model's configs file does not set it
        kind = positive(type(default)) if name in POSITIVE else type(default)
        opt.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=TUNED[name])
    opt.add_argument("--batch-size", type=positive(int))
    opt.add_argument("--eval-iters", type=positive(int), help="batches per split per eval")
    add_train_config_defaults(p)
    return p


def parse_args(argv=None):
    """configs/<model>.json, under the resumed run's settings, under --config, under the flags."""
    parser = build_parser()
    first = parser.parse_args(argv)
    defaults = config_path(first.model)
    layers = []
    if first.resume:
        try:
            directory = resume_directory(first.out_dir or read_settings(defaults).get("out_dir", DEFAULT_OUT_DIR))
        except FileNotFoundError as err:
            parser.error(f"--resume: {err}")
        layers.append((os.path.join(directory, "trainer_state.json"), read_trainer_state(directory)["run_config"]))
    if first.config:
        layers.append((first.config, read_settings(first.config)))
    args = parse_layered(parser, argv, (defaults, read_settings(defaults)), layers)
    args.out_dir = args.out_dir or DEFAULT_OUT_DIR
    return args


def run_bert(args):
    """BERT pretraining: documents of sentences, masked tokens, next-sentence pairs."""
    if args.data == "tinyshakespeare":
        sys.exit("error: --model bert needs a corpus of documents for next-sentence pairs: --data imdb or wikitext-2")
    tokenizer = build_tokenizer(args.tokenizer, args.data, args.vocab_size, args.data_dir, not args.no_progress)
    if not isinstance(tokenizer, WordPieceTokenizer):
        sys.exit("error: --model bert uses --tokenizer wordpiece ([CLS], [SEP], [MASK] and ## pieces)")
    train_docs, val_docs = lm_corpus(args.data, args.data_dir)
    key = f"{args.data}-{tokenizer_digest(tokenizer)}"
    train_docs = sentence_documents(tokenizer, train_docs, key + "-train", not args.no_progress)
    val_docs = sentence_documents(tokenizer, val_docs, key + "-val", not args.no_progress)
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
    ranks = world()  # several under mpirun: data parallelism (minillm/distributed/)
    silence_all_but_the_writer(ranks)
    with ranks.writer_first():  # the tokenizer and token streams are cached by one rank, read by the others
        if args.model == "bert":
            tokenizer, model, task = run_bert(args)
        else:
            tokenizer, train_ids, val_ids = lm_streams(args.tokenizer, args.data, args.vocab_size, args.data_dir,
                                                       progress=not args.no_progress)
            print(f"{args.data}: {args.tokenizer} vocabulary of {tokenizer.vocab_size}, "
                  f"{len(train_ids):,} train / {len(val_ids):,} val tokens")
            model, task = build_model_and_task(args, tokenizer.vocab_size, train_ids, val_ids)
    print(f"{args.model}: {model.num_parameters():,} parameters, {args.device}, {args.dtype}"
          + (f", {ranks.size} ranks" if ranks.size > 1 else ""))
    if args.tensor_parallel > 1:
        ranks = split_across_ranks(args, model, ranks)
    train_cfg = train_config(args)
    if train_cfg.warmup_iters >= train_cfg.max_iters:
        print(f"note: the {train_cfg.warmup_iters} warmup steps do not end within --max-iters {train_cfg.max_iters}: "
              f"the learning rate never reaches --learning-rate (set --warmup-iters lower)", file=sys.stderr)
    run_config = {k: v for k, v in vars(args).items() if k not in ("resume", "config")}
    trainer = Trainer(model, task, train_cfg, args.out_dir, extra_files=tokenizer.save, run_config=run_config,
                      progress=not args.no_progress, threads=args.threads, ranks=ranks)
    state_mb = 2 * trainer.optimizer.flat_m.nbytes / 2**20
    print(f"AdamW's moments: {state_mb:.2f} MB" + (" on each rank" if ranks.size > 1 else ""))
    history = trainer.run(resume=args.resume)  # a NonFiniteLoss ends it with one line (cli/errors.py)
    if args.full_val_tokens:
        score_held_out(args, trainer, task)
    if args.sample_tokens and hasattr(model, "generate"):  # every rank: a split model samples on all together
        sample = sample_text(model, tokenizer, args.sample_tokens, args.seed)
        if ranks.is_writer:
            with open(os.path.join(args.out_dir, "samples.txt"), "w", encoding="utf-8") as f:
                f.write(sample)
        print("---- sample ----\n" + sample.removeprefix("\n"))
    return history


def split_across_ranks(args, model, world):
    """--tensor-parallel N: the model cut into shards across the N ranks (distributed/model_shards.py); the
    trainer's view of them, to which they are one process reading every batch."""
    n = args.tensor_parallel
    if n != world.size:
        sys.exit(f"error: --tensor-parallel {n} runs under mpirun -n {n} (this run has {world.size} ranks; tensor "
                 "and data parallelism together are not built)")
    if args.model not in ("gpt", "bert"):
        sys.exit(f"error: --tensor-parallel splits gpt and bert, not {args.model}")
    if args.threads > 1:
        sys.exit("error: --tensor-parallel runs one thread a rank (--threads 1)")
    if args.shard_optimizer:
        sys.exit("error: --shard-optimizer (ZeRO-1) splits AdamW's state among data-parallel ranks, and "
                 "--tensor-parallel leaves none: every rank reads every batch")
    ranks = split_model(model, world)
    print(f"tensor parallel over {n} ranks: {model.num_parameters():,} parameters on each")
    return ranks


def score_held_out(args, trainer, task):
    """The run's final score over the first --full-val-tokens held-out tokens, logged and printed."""
    full = task.full_val_loss(args.full_val_tokens, progress=not args.no_progress)
    trainer.log({"iter": trainer.iter, "full_val_loss": full, "train_seconds": trainer.train_seconds})
    scope = task.full_val_scope
    if scope == FULL_VAL_SCOPE and args.full_val_tokens != FULL_VAL_TOKENS:
        scope = f"the first {args.full_val_tokens:,} held-out tokens (all, if fewer)"
    bits = f", {full / math.log(2):.3f} bits/char" if args.tokenizer == "char" else ""
    print(f"iter {trainer.iter}: validation loss over {scope} {full:.4f} nats/token, "
          f"perplexity {math.exp(full):.2f}{bits}")


if __name__ == "__main__":
    run_main(main)
