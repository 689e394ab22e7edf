"""Cross-attention fusion against late fusion: `python -m minillm.tools.fusion_compare`.

The task (tasks/fusion.py): does this recording say the digit in this image? Hard negatives are
mined in the shared space of an image CLIP (`--image`) and a speech CLIP aligned to its text tower
(`--speech`). Both fusion models read the same frozen token states of those towers and train for the
same steps with the same batches; the held-out speaker's recordings are paired with held-out images.
The prompt rule needs no training: a match when both sides' zero-shot digits agree.
Writes <out-dir>/fusion.json and each run's metrics under <out-dir>/{cross,late}/.
"""

import argparse
import json
import os

from minillm.backend import np, to_host
from minillm.checkpoint import write_json
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter, positive
from minillm.data.fsdd import SPEAKERS
from minillm.models.clip import CLIPModel
from minillm.models.fusion import FusionConfig, fusion_model
from minillm.tasks.clip import EVAL_BATCH, Captions, media_splits, prompt_embeddings
from minillm.tasks.fusion import FusionTask, prompt_rule_accuracy
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.trainer import TrainConfig, Trainer


def tower_outputs(model, x):
    """(token states (N, T, C), unit embeddings (N, D)) of a frozen CLIP tower, on the host."""
    model.eval()
    states, embeddings = [], []
    for k in range(0, len(x), EVAL_BATCH):
        embeddings.append(to_host(model.encode_media(x[k:k + EVAL_BATCH])))
        states.append(to_host(model.media_states))
    return np.concatenate(states), np.concatenate(embeddings)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--image", default="out/clip-image/best", help="the image CLIP checkpoint")
    p.add_argument("--speech", default="out/clip-speech/best", help="the speech CLIP aligned to its text tower")
    p.add_argument("--held-out-speaker", choices=SPEAKERS, help="the speaker the speech run held out (default: "
                                                                "the dataset's own split)")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--out-dir", default="out/fusion")
    p.add_argument("--max-iters", type=positive(int), default=600)
    p.add_argument("--batch-size", type=positive(int), default=64, help="pairs a step (half of them positives)")
    p.add_argument("--learning-rate", type=positive(float), default=1e-3)
    p.add_argument("--eval-interval", type=positive(int), default=200)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    clips = {"speech": CLIPModel.from_pretrained(args.speech), "image": CLIPModel.from_pretrained(args.image)}
    towers = {}
    for modality, model in clips.items():
        splits = media_splits(modality, args.data_dir, args.held_out_speaker)
        towers[modality] = {k: (*tower_outputs(model, x), y) for k, (x, y) in splits.items()}
    prompts = prompt_embeddings(clips["image"], Captions(WordPieceTokenizer.load(args.image)))
    width = towers["image"]["train"][0].shape[2]
    results = {}
    for fusion in ("cross", "late"):
        cfg = FusionConfig(fusion=fusion, hidden_size=width, num_attention_heads=4, intermediate_size=4 * width)
        model = fusion_model(cfg, seed=args.seed)
        task = FusionTask(model, towers["speech"], towers["image"], args.batch_size, args.seed)
        train = TrainConfig(max_iters=args.max_iters, eval_interval=args.eval_interval,
                            learning_rate=args.learning_rate, min_lr=args.learning_rate / 10, warmup_iters=50,
                            lr_decay_iters=args.max_iters, weight_decay=0.05, seed=args.seed,
                            metric_for_best="val_accuracy_hard_negatives", greater_is_better=True)
        trainer = Trainer(model, task, train, os.path.join(args.out_dir, fusion), progress=not args.no_progress)
        trainer.run()
        results[fusion] = {"parameters": model.num_parameters(), "train_seconds": round(trainer.train_seconds, 1),
                           **{k: v for k, v in trainer.history[-1].items() if k.startswith("val_")}}
    held_s, held_i = towers["speech"]["held_out"][1], towers["image"]["held_out"][1]
    results["prompt_rule"] = {f"val_accuracy_{kind}_negatives": prompt_rule_accuracy(pairs, held_s, held_i, prompts)
                              for kind, pairs in task.eval_pairs.items()}
    report = {"image": args.image, "speech": args.speech, "held_out_speaker": args.held_out_speaker,
              "held_out_pairs": 2 * len(towers["speech"]["held_out"][2]), "max_iters": args.max_iters, **results}
    write_json(os.path.join(args.out_dir, "fusion.json"), report)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    run_main(main)
