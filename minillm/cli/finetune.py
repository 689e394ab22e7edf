"""Fine-tuning: build the task model from the starting checkpoint, train it on the task, report on dev and test.

What the flags mean, and what `--init auto` chooses: cli/finetune_args.py
(its USAGE is `python finetune.py --help`). Prediction with the fine-tuned
model: cli/predict.py. Under `mpirun -n N` (with --grad-accum a multiple of
N) the ranks share every step's micro-batches, as train.py's do; rank 0
writes the checkpoints, reports and adapters.
"""

import copy
import math
import os
import sys

from minillm import backend
from minillm.checkpoint import load_safetensors, read_json
from minillm.cli.errors import UsageError, run_main
from minillm.cli.finetune_args import check_out_dir, checkpoint_dir, own_bert, parse_args
from minillm.cli.predict import max_tokens, predict
from minillm.data.labelled import classification_data
from minillm.data.lm_data import train_tokenizer
from minillm.data.squad import squad
from minillm.distributed.mpi import silence_all_but_the_writer, world
from minillm.efficiency.prune import hold_zeros
from minillm.models.auto import CLASSIFIERS, QUESTION_ANSWERERS, TASK_MODELS, TOKEN_CLASSIFIERS, build_model
from minillm.models.heads import QA_LABELS
from minillm.models.lstm_classifier import LSTMClassifierConfig
from minillm.models.pretrained import resolve_init
from minillm.nn.loss import IGNORE_INDEX
from minillm.nn.parallel import BatchParallel
from minillm.peft.bitfit import add_bitfit
from minillm.peft.adapter import add_bottleneck
from minillm.peft.lora import add_lora, merge_lora
from minillm.peft.methods import METHODS
from minillm.peft.prefix import add_prefix_tuning
from minillm.peft.prompt import add_prompt_tuning
from minillm.tasks import ner, qa
from minillm.tasks.classification import SequenceClassificationTask, encode_all, tokenizer_pad_id, write_report
from minillm.tasks.distillation import DistillationTask, cached_teacher_logits
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import TrainConfig, Trainer


def load_source(args):
    """(checkpoint directory, its tokenizer, its config.json) that --init (or --arch-from) names."""
    if args.model == "lstm" and args.init == "none":
        return fresh_lstm(args)
    scratch = args.init == "none"
    try:
        source = checkpoint_dir(resolve_init(args.arch_from if scratch else args.init))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    config_path = os.path.join(source, "config.json")
    if not os.path.exists(config_path):
        sys.exit(f"error: no pretrained checkpoint at {source}. Make one with `python train.py --model bert` "
                 f"(it saves to {own_bert()}), or pass --init DIR (or --init none --arch-from DIR).")
    config = read_json(config_path)
    supported = ("lstm_lm",) if args.model == "lstm" else TASK_MODELS.get(args.task, CLASSIFIERS)
    if config.get("model_type") not in supported:
        raise UsageError(f"{config_path}: model_type {config.get('model_type')!r}, but --task {args.task} "
                         f"fine-tunes {' or '.join(supported)} checkpoints")
    return source, load_tokenizer(source), config


def fresh_lstm(args):
    """--model lstm: (a description, a --tokenizer learned from the task's training texts, an LSTM config.json)."""
    texts = classification_data(args.task, args.dataset, args.data_dir)[0]["train"][0]
    texts = texts[:args.max_train_examples or None]  # the texts it will be trained on, no more
    tokenizer = train_tokenizer(args.tokenizer, texts, args.vocab_size, progress=not args.no_progress)
    config = LSTMClassifierConfig(vocab_size=tokenizer.vocab_size, n_embd=args.n_embd, hidden_size=args.hidden_size,
                                  num_layers=args.n_layer)
    source = (f"--model lstm ({args.tokenizer} vocabulary of {tokenizer.vocab_size} learned from the {len(texts):,} "
              "training texts)")
    return source, tokenizer, config.to_dict()


def start_from(model, source, args):
    """Load the pretrained backbone into a fresh task model (unless --init none), saying what was new;
    hold its zero weights at zero for --hold-zeros; then freeze it for --peft."""
    if args.init == "none":
        print(f"random initialisation; architecture and tokenizer from {source}")
    else:
        weights = os.path.join(source, "model.safetensors")
        tensors = load_safetensors(weights)  # a malformed file's error names it already
        try:
            fresh, unused = model.load_backbone(tensors)
        except ValueError as err:
            sys.exit(f"error: {weights}: {err}")
        print(f"backbone from {source}; initialised fresh: {', '.join(fresh) or 'nothing'}"
              + (f"; checkpoint weights not used: {', '.join(unused)}" if unused else ""))
    if args.hold_zeros:
        print(f"--hold-zeros: {hold_zeros(model):,} zero weights of {source} stay zero")
    if args.peft:
        apply_peft(model, args)


def apply_peft(model, args):
    """--peft: freeze the backbone and add (or, for bitfit, unfreeze) the few parameters that train."""
    try:
        if args.peft == "bitfit":
            add_bitfit(model)
        elif args.peft == "lora":
            targets = args.lora_targets or (["c_attn"] if hasattr(model, "transformer") else ["query", "value"])
            add_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout, targets, seed=args.seed)
        elif args.peft == "adapter":
            add_bottleneck(model, args.adapter_size, seed=args.seed)
        else:
            add = add_prompt_tuning if args.peft == "prompt" else add_prefix_tuning
            add(model, args.num_virtual_tokens, seed=args.seed)
    except ValueError as err:
        raise UsageError(f"--peft {args.peft}: {err}") from None
    n, total = model.num_parameters(trainable_only=True), model.num_parameters()
    print(f"--peft {args.peft}: {n:,} of {total:,} parameters train ({100 * n / total:.2f}%)")


def save_peft(model, args, tokenizer):
    """The best adapter in <out-dir>/adapter (PEFT's layout); with --merge (LoRA), a merged copy too
    (the model itself keeps its adapters: the reports still run it)."""
    if args.peft not in METHODS:
        return
    METHODS[args.peft].save(model, os.path.join(args.out_dir, "adapter"), args.init)
    print(f"{args.peft} adapter (Hugging Face PEFT layout): {args.out_dir}/adapter")
    if args.merge:
        merged = os.path.join(args.out_dir, "merged")
        merge_lora(copy.deepcopy(model)).save_pretrained(merged, extra_files=tokenizer.save)
        print(f"merged model: {args.out_dir}/merged")


def train(model, task, args, tokenizer, metric_for_best, ranks):
    """Fine-tune for args.epochs passes of an EpochTask, with linear warmup and decay, evaluating on dev;
    leaves the best dev weights in `model` (on every rank: the others wait until the writer has saved them)."""
    batches_per_step = args.grad_accum  # (over all ranks together)
    steps = max(1, math.ceil(args.epochs * task.steps_per_epoch / batches_per_step))
    eval_interval = max(1, task.steps_per_epoch // batches_per_step // args.evals_per_epoch)
    cfg = TrainConfig(max_iters=steps, eval_interval=eval_interval, grad_accum=args.grad_accum,
                      log_interval=10, learning_rate=args.learning_rate, min_lr=0.0,
                      warmup_iters=int(args.warmup_ratio * steps), lr_decay_iters=steps,
                      weight_decay=args.weight_decay, beta1=0.9, beta2=0.999, seed=args.seed, schedule="linear",
                      metric_for_best=metric_for_best, greater_is_better=True,
                      early_stopping_patience=args.patience, precision=args.precision, bucket_mb=args.bucket_mb)
    trainer = Trainer(model, task, cfg, args.out_dir, extra_files=tokenizer.save, run_config=vars(args),
                      progress=not args.no_progress, threads=args.threads, ranks=ranks)
    trainer.run()  # a NonFiniteLoss ends it with one line (cli/errors.py)
    ranks.barrier()  # best/ is written by the writer
    model.load_pretrained_state(load_safetensors(os.path.join(args.out_dir, "best", "model.safetensors")))
    if ranks.is_writer:
        save_peft(model, args, tokenizer)


def finetune_classification(args, source, tokenizer, config, ranks):
    """sentiment, news, intent: one label per text."""
    with ranks.writer_first():  # (a missing data set is downloaded once)
        splits, names, note = classification_data(args.task, args.dataset, args.data_dir)
    unlabelled = splits["train"][0][args.max_train_examples:][:args.transfer_examples] if args.transfer_examples else []
    for split in splits:
        limit = args.max_train_examples if split == "train" else args.max_eval_examples
        splits[split] = tuple(part[:limit or None] for part in splits[split])
    if unlabelled:  # read by the distillation term alone: their labels are never looked at
        texts, labels = splits["train"]
        splits["train"] = (list(texts) + list(unlabelled), list(labels) + [IGNORE_INDEX] * len(unlabelled))
    model = build_model(CLASSIFIERS, config, names, tokenizer_pad_id(tokenizer), args.dropout, args.seed,
                        args.pooling)
    start_from(model, source, args)
    max_length = max_tokens(model, args)
    try:
        encoded = {s: encode_all(tokenizer, texts, max_length) for s, (texts, _) in splits.items()}
    except ValueError as err:  # a character-level tokenizer meets a character its corpus lacked
        sys.exit(f"error: the tokenizer of {source} cannot encode the {args.task} texts: {err}. Pretrain with "
                 f"--tokenizer bpe (bytes: any text), or train from random weights with --model lstm --init none")
    labels = {s: list(y) for s, (_, y) in splits.items()}
    transfer = f" (of which {len(unlabelled)} unlabelled, for the teacher's logits alone)" if unlabelled else ""
    print(f"{args.task}: {note}; " + ", ".join(f"{s} {len(v)}" + (transfer if s == "train" else "")
                                              for s, v in encoded.items()))

    common = dict(seed=args.seed, grad_accum=args.grad_accum, progress=not args.no_progress)
    if args.teacher:
        with ranks.writer_first():  # the writer computes and caches them, the others read the cache
            teacher_logits = teacher_train_logits(args, splits["train"][0])
        task = DistillationTask(BatchParallel(model, args.threads), encoded, labels, args.batch_size,
                                tokenizer_pad_id(tokenizer), teacher_logits, args.distill_temperature,
                                args.distill_alpha, **common)
    else:
        task = SequenceClassificationTask(BatchParallel(model, args.threads), encoded, labels, args.batch_size,
                                          tokenizer_pad_id(tokenizer), **common)
    train(model, task, args, tokenizer, "val_accuracy", ranks)
    if not ranks.is_writer:  # the writer reports
        return {}
    results = {}
    for split in [s for s in ("dev", "test") if s in encoded]:
        report = write_report(os.path.join(args.out_dir, f"report-{split}"), args.task, split, names,
                              splits[split][0], labels[split], task.predict(encoded[split]), note)
        results[split] = report["scores"]
        print(f"best checkpoint, {split}: accuracy {report['scores']['accuracy']:.4f}, "
              f"macro-F1 {report['scores']['macro_f1']:.4f} (report: {args.out_dir}/report-{split}.md)")
    return results


def teacher_train_logits(args, texts):
    """--teacher's logits on the training texts, read through its own tokenizer: computed once (and cached)."""
    logits, cached = cached_teacher_logits(args.teacher, texts, args.max_length, args.batch_size,
                                           progress=not args.no_progress)
    origin = "from the cache" if cached else "computed"
    print(f"teacher {args.teacher}: logits on {len(texts)} training texts ({origin}), T {args.distill_temperature}, "
          f"alpha {args.distill_alpha}")
    return logits


def finetune_ner(args, source, tokenizer, config, ranks):
    """ner: a BIO2 tag for each word of CoNLL-2003, the best checkpoint chosen by dev entity F1."""
    model = build_model(TOKEN_CLASSIFIERS, config, ner.TAGS, tokenizer_pad_id(tokenizer), args.dropout, args.seed)
    start_from(model, source, args)
    with ranks.writer_first():
        encoded, word_ids, sentences = ner.conll_splits(tokenizer, max_tokens(model, args),
                                                        args.max_train_examples, args.max_eval_examples,
                                                        args.data_dir)
    print(f"ner: {ner.NOTE}; " + ", ".join(f"{s} {len(v)}" for s, v in encoded.items()))
    task = ner.TokenClassificationTask(BatchParallel(model, args.threads), encoded, word_ids, sentences,
                                       args.batch_size, tokenizer_pad_id(tokenizer), seed=args.seed,
                                       grad_accum=args.grad_accum, progress=not args.no_progress)
    train(model, task, args, tokenizer, "val_f1", ranks)
    if not ranks.is_writer:
        return {}
    results = {}
    for split in ("dev", "test"):
        report = ner.write_report(os.path.join(args.out_dir, f"report-{split}"), split, model.label_names,
                                  sentences[split], task.predict(encoded[split]), word_ids[split])
        results[split] = scores = report["scores"]
        print(f"best checkpoint, {split}: entity precision {scores['precision']:.4f}, recall "
              f"{scores['recall']:.4f}, F1 {scores['f1']:.4f} (report: {args.out_dir}/report-{split}.md)")
    return results


def finetune_qa(args, source, tokenizer, config, ranks):
    """qa: extractive question answering on SQuAD v1.1; the answer is a span of the context."""
    with ranks.writer_first():
        note = qa.split_note(args.data_dir)
        examples = {s: squad(s, args.data_dir) for s in ("train", "dev")}
    for split, limit in (("train", args.max_train_examples), ("dev", args.max_eval_examples)):
        examples[split] = examples[split][:limit or None]
    model = build_model(QUESTION_ANSWERERS, config, QA_LABELS, tokenizer_pad_id(tokenizer),
                        args.dropout, args.seed)
    start_from(model, source, args)
    max_length = max_tokens(model, args)
    try:
        windows = {s: qa.build_windows(tokenizer, ex, max_length, args.doc_stride, args.max_query_length)
                   for s, ex in examples.items()}
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"qa: {note}; " + ", ".join(f"{s} {len(examples[s])} questions in {len(w)} windows"
                                      for s, w in windows.items()) + f" of at most {max_length} tokens")

    task = qa.SpanExtractionTask(BatchParallel(model, args.threads), windows, examples, args.batch_size,
                                 tokenizer_pad_id(tokenizer), args.max_answer_length, seed=args.seed,
                                 grad_accum=args.grad_accum, progress=not args.no_progress)
    train(model, task, args, tokenizer, "val_f1", ranks)
    if not ranks.is_writer:
        return {}
    report = qa.write_report(os.path.join(args.out_dir, "report-dev"), "dev", examples["dev"],
                             task.answers("dev")[0], note)
    scores = report["scores"]
    print(f"best checkpoint, dev: exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} over "
          f"{scores['count']} questions (report: {args.out_dir}/report-dev.md)\n{note}")
    return {"dev": scores}


def main(argv=None):
    args = parse_args(argv)
    backend.use(args.device)
    backend.reuse_freed_memory()  # activations are freed and allocated again every step
    if args.predict or args.predict_file:
        return predict(args)
    ranks = world()  # several under mpirun: data parallelism (minillm/distributed/)
    silence_all_but_the_writer(ranks)
    if ranks.is_writer:
        check_out_dir(args)
    finetune = {"ner": finetune_ner, "qa": finetune_qa}.get(args.task, finetune_classification)
    with ranks.writer_first():  # a tokenizer trained here (--model lstm) is cached once
        source, tokenizer, config = load_source(args)
    print(f"tokenizer: {type(tokenizer).__name__} of {tokenizer.vocab_size:,} tokens from {source}; "
          f"it covers {tokenizer.covers}")
    return finetune(args, source, tokenizer, config, ranks)


if __name__ == "__main__":
    run_main(main)
