"""Sequence classification (sentiment, news, intent): one label per text."""

from minillm.backend import np, to_device, to_float
from minillm.checkpoint import write_json
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.tasks.batching import EpochBatches, pad_batch, predict_probabilities
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.task import EpochTask


class SequenceClassificationTask(EpochTask):
    """One label per text: cross-entropy on the model's (B, K) logits, accuracy and macro-F1 on dev.

    Training walks the examples epoch by epoch in batches of similar length
    (epoch_batches), each padded only to its own longest text (dynamic
    padding). Evaluation sorts by length so batches carry little padding.
    """

    def __init__(self, model, encoded, labels, batch_size, pad_id, eval_split="dev", seed=1337, grad_accum=1,
                 group_by_length=True, progress=False):
        self.model, self.encoded, self.labels = model, encoded, labels  # {split: [ids]}, {split: [int]}
        self.grad_accum, self.progress = grad_accum, progress  # progress: a bar over prediction batches
        self.batch_size, self.pad_id, self.eval_split, self.seed = batch_size, pad_id, eval_split, seed
        self.batch_indices = EpochBatches(map(len, encoded["train"]), batch_size, seed, group_by_length)
        self.steps_per_epoch = self.batch_indices.steps_per_epoch
        self.tokens_per_step = batch_size * sum(map(len, encoded["train"])) // len(encoded["train"])

    def train_step(self, it, micro, scale):
        rows = self.batch_indices(it * self.grad_accum + micro)
        ids, mask = self.pad(rows)
        logits = self.model(ids, mask)  # (B, K)
        loss, cache = cross_entropy_forward(logits, to_device(np.array([self.labels["train"][i] for i in rows])))
        self.model.backward(cross_entropy_backward(scale, cache))
        return to_float(loss)

    def pad(self, rows):
        """(ids, attention_mask) of the training examples `rows`, padded to the longest."""
        return pad_batch([self.encoded["train"][i] for i in rows], self.pad_id)

    def predict(self, sequences):
        return predict_probabilities(self.model, sequences, self.batch_size, self.pad_id, progress=self.progress)

    def evaluate(self, split=None):
        split = split or self.eval_split
        probs = self.predict(self.encoded[split])
        gold = self.labels[split]
        pred = probs.argmax(axis=1).tolist()
        nll = -np.log(np.maximum(probs[np.arange(len(gold)), gold], 1e-30)).mean()
        return {"val_loss": float(nll), "val_accuracy": metrics.accuracy(gold, pred),
                "val_macro_f1": metrics.macro_f1(gold, pred, labels=range(probs.shape[1]))}


def tokenizer_pad_id(tokenizer):
    """[PAD] for WordPiece; GPT-2 has no pad token, so like Hugging Face pad with <|endoftext|> (masked out)."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer.pad_id
    return getattr(tokenizer, "special_tokens", {}).get("<|endoftext|>", 0)


def encode_all(tokenizer, texts, max_length):
    """Token ids of each text cut to max_length: `[CLS] text [SEP]` for WordPiece (an empty text
    becomes one pad token for the others)."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return [tokenizer.encode_plus(t, max_length=max_length, truncation=True).input_ids for t in texts]
    return [tokenizer.encode(t)[:max_length] or [tokenizer_pad_id(tokenizer)] for t in texts]


def write_report(path, task, split, names, texts, gold, probs, note):
    """Metrics, confusion matrix and the ten most confident mistakes of one split, as JSON and markdown."""
    pred = probs.argmax(axis=1).tolist()
    scores = metrics.classification_scores(gold, pred, labels=list(range(len(names))))
    matrix = scores["confusion_matrix"]
    mistakes = sorted((i for i in range(len(gold)) if pred[i] != gold[i]), key=lambda i: -probs[i, pred[i]])[:10]
    report = {"task": task, "split": split, "note": note, "scores": scores,
              "confusion_matrix": {"labels": names, "rows_gold_cols_pred": matrix},
              "confident_mistakes": [{"text": texts[i], "gold": names[gold[i]], "pred": names[pred[i]],
                                      "confidence": float(probs[i, pred[i]])} for i in mistakes]}
    write_json(path + ".json", report)
    lines = [f"# {task}: {split}", "", note, "", f"accuracy {scores['accuracy']:.4f}, "
             f"macro-F1 {scores['macro_f1']:.4f}", "", "| gold \\ pred | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    lines += [f"| {names[g]} | " + " | ".join(str(int(c)) for c in row) + " |" for g, row in enumerate(matrix)]
    lines += ["", "## Most confident mistakes", ""]
    lines += [f"- {m['confidence']:.3f} {m['pred']} (gold {m['gold']}): {m['text'][:200]}"
              for m in report["confident_mistakes"]]
    with open(path + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return report
