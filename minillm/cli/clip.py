"""Align digits' images or recordings with their captions (CLIP), or train the supervised baseline.

    python -m minillm.cli.clip --modality image                      image-text CLIP on MNIST
    python -m minillm.cli.clip --modality image --objective supervised   the same tower, cross-entropy
    python -m minillm.cli.clip --modality speech --held-out-speaker theo --text-from out/clip-image/best

MNIST holds out every fifth image; FSDD holds out one speaker (--held-out-speaker), or without it the
dataset's own test indices 0-4. --text-from starts the text tower and its projection from an image
CLIP and freezes them, so the recordings are aligned to the same space as the images. Checkpoints:
<out-dir>/best/ and <out-dir>/checkpoint/ (config.json, model.safetensors, the tokenizer's vocab.txt),
metrics in <out-dir>/metrics.jsonl; the final evaluation is printed as JSON.
"""

import argparse
import json
import os

from minillm.cli.errors import UsageError, run_main
from minillm.cli.settings import HelpFormatter, add_train_config_defaults, positive, train_config
from minillm.data.fsdd import SPEAKERS
from minillm.models.clip import CLIPConfig, CLIPModel, MediaClassifier
from minillm.tasks.clip import (N_FRAMES, N_MELS, Captions, CLIPTask, SupervisedMediaTask, caption_tokenizer,
                                media_splits)
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.trainer import Trainer

def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--modality", choices=["image", "speech"], required=True)
    p.add_argument("--objective", choices=["clip", "supervised"], default="clip")
    p.add_argument("--held-out-speaker", choices=SPEAKERS, help="speech: the speaker held out (default: the "
                                                                "dataset's own split, indices 0-4 held out)")
    p.add_argument("--text-from", help="speech CLIP: an image CLIP checkpoint whose text tower is loaded and frozen")
    p.add_argument("--out-dir", help="run directory (default: out/<objective>-<modality>[-<speaker>])")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--limit", type=positive(int), help="train on the first N training items only (quick checks)")
    p.add_argument("--no-progress", action="store_true")
    m = p.add_argument_group("model")
    m.add_argument("--hidden-size", type=positive(int), default=64)
    m.add_argument("--layers", type=positive(int), default=2)
    m.add_argument("--heads", type=positive(int), default=4)
    m.add_argument("--patch-size", type=positive(int), help="pixels (image, default 7) or frames (speech, default 2)")
    m.add_argument("--projection-dim", type=positive(int), default=64)
    m.add_argument("--pooling", choices=["cls", "mean"], default="mean",
                   help="the image or speech tower's output: its [CLS] state or the mean of all its states")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=positive(int), default=128)
    o.add_argument("--max-iters", type=positive(int), default=1000)
    o.add_argument("--max-seconds", type=float, default=0.0, help="training-time budget in seconds (0: none)")
    o.add_argument("--learning-rate", type=positive(float), default=2e-3)
    o.add_argument("--min-lr", type=float, default=1e-4)
    o.add_argument("--warmup-iters", type=int, default=50)
    o.add_argument("--weight-decay", type=float, default=0.05)
    o.add_argument("--eval-interval", type=positive(int), default=200)
    o.add_argument("--log-interval", type=positive(int), default=20)
    o.add_argument("--seed", type=int, default=1337)
    add_train_config_defaults(p)
    return p


def load_media(args):
    """((x, y) train, (x, y) held out), host arrays; --limit cuts the training set."""
    splits = media_splits(args.modality, args.data_dir, args.held_out_speaker)
    x, y = splits["train"]
    return ((x[:args.limit], y[:args.limit]) if args.limit else (x, y)), splits["held_out"]


def default_out_dir(args):
    speaker = f"-{args.held_out_speaker}" if args.modality == "speech" and args.held_out_speaker else ""
    return os.path.join("out", f"{args.objective}-{args.modality}{speaker}")


def build_model(args, tokenizer):
    patch = args.patch_size or (7 if args.modality == "image" else 2)
    cfg = CLIPConfig(modality=args.modality, input_size=(28, 28) if args.modality == "image" else (N_FRAMES, N_MELS),
                     patch_size=patch, hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, intermediate_size=4 * args.hidden_size,
                     text_vocab_size=tokenizer.vocab_size, projection_dim=args.projection_dim,
                     media_pooling=args.pooling)
    if args.objective == "supervised":
        return MediaClassifier(cfg, seed=args.seed)
    model = CLIPModel(cfg, seed=args.seed)
    if args.text_from:
        text = CLIPModel.from_pretrained(args.text_from)
        if (text.config.hidden_size, text.config.projection_dim) != (cfg.hidden_size, cfg.projection_dim):
            raise UsageError(f"--text-from {args.text_from}: hidden size and projection dim "
                             f"{text.config.hidden_size}, {text.config.projection_dim} differ from this run's "
                             f"{cfg.hidden_size}, {cfg.projection_dim}")
        for name in ("text_model", "text_projection"):
            getattr(model, name).load_state_dict(getattr(text, name).state_dict())
            getattr(model, name).requires_grad_(False)
    return model


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.text_from and (args.modality != "speech" or args.objective != "clip"):
        raise UsageError("--text-from applies to --modality speech --objective clip")
    if args.held_out_speaker and args.modality != "speech":
        raise UsageError("--held-out-speaker applies to --modality speech")
    args.out_dir = args.out_dir or default_out_dir(args)
    tokenizer = WordPieceTokenizer.load(args.text_from) if args.text_from else caption_tokenizer()
    train, held_out = load_media(args)
    model = build_model(args, tokenizer)
    if args.objective == "clip":
        task = CLIPTask(model, Captions(tokenizer), train, held_out, args.batch_size, args.seed)
        metric = "val_zero_shot_accuracy"
    else:
        task = SupervisedMediaTask(model, train, held_out, args.batch_size, args.seed)
        metric = "val_accuracy"
    cfg = train_config(args, lr_decay_iters=args.max_iters, metric_for_best=metric, greater_is_better=True)
    trainer = Trainer(model, task, cfg, args.out_dir, extra_files=tokenizer.save, run_config=vars(args),
                      progress=not args.no_progress)
    trainer.run()
    final = {"out_dir": args.out_dir, "train_items": len(train[1]), "held_out_items": len(held_out[1]),
             "iters": trainer.iter, "train_seconds": round(trainer.train_seconds, 1), "best_" + metric: trainer.best,
             "final": trainer.history[-1] if trainer.history else {}}
    final["final"] = {k: v for k, v in final["final"].items() if k != "iter"}
    print(json.dumps(final))
    return final


if __name__ == "__main__":
    run_main(main)
