"""Speed of all-MiniLM-L6-v2 here: `python -m minillm.tools.embeddings_bench`.

Times sentence embeddings (tasks/sentence_embeddings.py) on SST-2 dev:
sentences/s for embedding, and for prediction with a sequence classifier on
the same encoder; then tokens/s and ms/step of fine-tuning that classifier on
SST-2 train batches (forward, backward, clipping, AdamW), as finetune.py runs it.
"""

import argparse
import os
import tempfile
import time

from minillm import backend
from minillm.checkpoint import load_safetensors
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.data.labelled import sst2
from minillm.models.bert import BertModel
from minillm.models.heads import BertForSequenceClassification
from minillm.models.pretrained import resolve_init
from minillm.tasks.batching import predict_probabilities
from minillm.tasks.classification import SequenceClassificationTask
from minillm.tasks.sentence_embeddings import sentence_embeddings
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import TrainConfig, Trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--init", default="minilm", help="'minilm' or a Hugging Face BERT directory")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--limit", type=int, default=0, help="time the first N dev sentences (0: all 872)")
    p.add_argument("--train-steps", type=int, default=20, help="fine-tuning steps timed (after one warm-up step)")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    args = p.parse_args(argv)
    backend.use(args.device)
    backend.reuse_freed_memory()  # activations are freed and allocated again every step
    directory = resolve_init(args.init)
    tokenizer = load_tokenizer(directory)
    texts = [t for t, _ in sst2("dev", args.data_dir)][:args.limit or None]
    tokens = sum(len(tokenizer.encode_plus(t, max_length=args.max_length, truncation=True).input_ids) for t in texts)

    encoder = BertModel.from_pretrained(directory).eval()
    start = time.perf_counter()
    sentence_embeddings(encoder, tokenizer, texts, args.batch_size, args.max_length)
    backend.synchronize()
    embed_s = time.perf_counter() - start

    # the same weights under a fresh head: prediction costs what a fine-tuned model's does
    classifier = BertForSequenceClassification(encoder.config, ["negative", "positive"], tokenizer.pad_id)
    classifier.load_backbone(load_safetensors(os.path.join(directory, "model.safetensors")))
    encoded = [tokenizer.encode_plus(t, max_length=args.max_length, truncation=True).input_ids for t in texts]
    start = time.perf_counter()
    predict_probabilities(classifier, encoded, args.batch_size, tokenizer.pad_id)
    backend.synchronize()
    predict_s = time.perf_counter() - start
    print(f"{len(texts)} SST-2 dev sentences ({tokens} tokens), batch {args.batch_size} by length, {args.device}: "
          f"embedding {len(texts) / embed_s:.1f} sentences/s ({embed_s:.2f} s), "
          f"prediction {len(texts) / predict_s:.1f} sentences/s ({predict_s:.2f} s)")
    if args.train_steps:
        tokens_per_s, ms_per_step = time_fine_tuning(classifier, tokenizer, args)
        print(f"fine-tuning, batch {args.batch_size} of SST-2 train grouped by length: "
              f"{tokens_per_s:.0f} tokens/s, {ms_per_step:.0f} ms/step")


def time_fine_tuning(classifier, tokenizer, args):
    """(tokens/s, ms/step) of the trainer's step on SST-2 train batches, averaged over args.train_steps."""
    pairs = sst2("train", args.data_dir)[:args.batch_size * 200]  # (text, label); 200 batches to group by length
    encoded = [tokenizer.encode_plus(t, max_length=args.max_length, truncation=True).input_ids for t, _ in pairs]
    task = SequenceClassificationTask(classifier, {"train": encoded}, {"train": [y for _, y in pairs]},
                                      args.batch_size, tokenizer.pad_id)
    classifier.train()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(classifier, task, TrainConfig(), run_dir, progress=False)
        trainer.step(0, 1e-5)  # warm-up: first allocations of gradients and optimizer moments
        backend.synchronize()
        start, tokens = time.perf_counter(), 0
        for it in range(1, args.train_steps + 1):
            tokens += sum(len(encoded[i]) for i in task.batch_indices(it))
            trainer.step(it, 1e-5)
        backend.synchronize()
    seconds = time.perf_counter() - start
    return tokens / seconds, 1000 * seconds / args.train_steps


if __name__ == "__main__":
    run_main(main)
