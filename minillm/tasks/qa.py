"""Extractive question answering (SQuAD v1.1): the answer is a span of the context.

    input    [CLS] question [SEP] context window [SEP]     token_type_ids 0 ... 0 1 ... 1
    model    start_t, end_t at every position t             (heads.BertForQuestionAnswering)
    loss     L = (CE(start, s*) + CE(end, e*)) / 2           s*, e*: the answer's first and last token
    answer   argmax_{s <= e < s + L} start_s + end_e        over the context tokens of every window

A context too long for one input is cut into overlapping windows, each starting
doc_stride tokens after the one before, so every context token is in some
window. A window that does not hold the whole answer is trained to point at
[CLS] (targets (0, 0)), as BERT's run_squad does. The tokens' character
offsets map the chosen span back to the context, so the answer is the original
text (case, accents, spacing), which is what the official script scores.
"""

import dataclasses
import json

from tqdm import tqdm

from minillm.backend import np, to_device, to_float, to_host, xp
from minillm.checkpoint import write_json
from minillm.data.squad import squad_uses_official_train
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.tasks.batching import EpochBatches, length_batches, pad_batch
from minillm.training.task import EpochTask


def best_spans(start_logits, end_logits, allowed, max_answer_length):
    """The (start, end) maximising start_logits[s] + end_logits[e] with s <= e < s + max_answer_length.

    start_logits, end_logits: (B, T); allowed: (B, T) bool, True on context
    tokens (never the question or special tokens). Returns host arrays
    starts, ends, scores, each (B,). Ties go to the earliest start, then the
    shortest span.
    """
    s = np.asarray(start_logits, dtype=np.float64)
    e = np.asarray(end_logits, dtype=np.float64)
    ok = np.asarray(allowed, dtype=bool)
    T = s.shape[1]
    offsets = np.arange(T)
    band = (offsets[None, :] >= offsets[:, None]) & (offsets[None, :] < offsets[:, None] + max_answer_length)  # (T, T)
    scores = s[:, :, None] + e[:, None, :]  # (B, T, T): [b, start, end]
    valid = band[None] & ok[:, :, None] & ok[:, None, :]
    scores = np.where(valid, scores, -np.inf)
    flat = scores.reshape(len(s), -1).argmax(axis=1)  # first maximum in (start, end) order
    starts, ends = np.divmod(flat, T)
    return starts, ends, scores.reshape(len(s), -1)[np.arange(len(s)), flat]


@dataclasses.dataclass
class Window:
    """One model input: a question with one window of its context."""
    example: int  # the question's index in its list of examples
    input_ids: list
    token_type_ids: list
    offsets: list  # per token: (start, end) characters of the context, None for question and special tokens
    start: int = 0  # the answer's first and last token in this window; 0 ([CLS]) when it is not all inside
    end: int = 0


# ---------------------------------------------------------------- features
def answer_token_span(tokens, char_start, char_end):
    """(first, last) index of the tokens that overlap characters [char_start, char_end), or None."""
    inside = [i for i, (_, start, end) in enumerate(tokens) if start < char_end and end > char_start]
    return (inside[0], inside[-1]) if inside else None


def window_starts(n_tokens, room, doc_stride):
    """The first context token of each window: 0, doc_stride, 2 doc_stride, ... until a window reaches
    the end. A step is never longer than a window (room tokens), so no token is skipped."""
    step = min(room, doc_stride)
    starts = [0]
    while starts[-1] + room < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def question_windows(tokenizer, example, index, context_tokens, max_length, doc_stride, max_query_length):
    """The Windows of one question, its context already tokenized (tokenize_with_offsets).

    Training targets come from the first gold answer (an example without
    "answers", as in --predict, gets (0, 0) everywhere). A context without a
    single token is a ValueError: there would be nothing to answer with.
    """
    if not context_tokens:
        raise ValueError(f"question {example['id']!r}: its context has no tokens")
    question = tokenizer.tokenize_with_offsets(example["question"])[:max_query_length]
    room = max_length - len(question) - 3  # [CLS] question [SEP] ... [SEP]
    if room < 1:
        raise ValueError(f"max_length {max_length} leaves no room for a context after a question of "
                         f"{len(question)} tokens (max_query_length {max_query_length})")
    answer = None
    if example.get("answers"):
        first = example["answers"]["answer_start"][0]
        answer = answer_token_span(context_tokens, first, first + len(example["answers"]["text"][0]))
    windows = []
    for first in window_starts(len(context_tokens), room, doc_stride):
        part = context_tokens[first:first + room]
        enc = tokenizer.encode_tokens(question, part)
        offsets = [o if seq == 1 else None for o, seq in zip(enc.offsets, enc.sequence_ids)]
        shift = len(question) + 2 - first  # context token i sits at position i + shift
        inside = answer is not None and first <= answer[0] and answer[1] < first + len(part)
        start, end = (answer[0] + shift, answer[1] + shift) if inside else (0, 0)
        windows.append(Window(index, enc.input_ids, enc.token_type_ids, offsets, start, end))
    return windows


def build_windows(tokenizer, examples, max_length, doc_stride=128, max_query_length=64):
    """Every Window of every question, in order; a context shared by several questions is tokenized once."""
    tokenized, windows = {}, []
    for index, example in enumerate(examples):
        context = example["context"]
        if context not in tokenized:
            tokenized[context] = tokenizer.tokenize_with_offsets(context)
        windows += question_windows(tokenizer, example, index, tokenized[context], max_length, doc_stride,
                                    max_query_length)
    return windows


def pad_windows(windows, pad_id):
    """Right-padded (ids, attention_mask, token_type_ids) device arrays (B, T), and the host (B, T) bools
    `allowed`: True on context tokens, the only ones an answer may use."""
    ids, mask = pad_batch([w.input_ids for w in windows], pad_id)
    types, _ = pad_batch([w.token_type_ids for w in windows], 0)
    allowed = np.zeros(ids.shape, dtype=bool)
    for row, w in zip(allowed, windows):
        row[:len(w.offsets)] = [o is not None for o in w.offsets]
    return ids, mask, types, allowed


# ---------------------------------------------------------------- loss
def span_loss_forward(start_logits, end_logits, attention_mask, starts, ends):
    """L = (CE(start_logits, starts) + CE(end_logits, ends)) / 2, each softmax over a row's real tokens.

    start_logits, end_logits, attention_mask: (B, T); starts, ends: (B,). Padding
    gets a logit of -1e9 (probability 0), so a window's loss does not depend on
    how much its batch pads it.
    """
    padding = xp.asarray(attention_mask) == 0
    loss_start, cache_start = cross_entropy_forward(xp.where(padding, -1e9, start_logits), starts)
    loss_end, cache_end = cross_entropy_forward(xp.where(padding, -1e9, end_logits), ends)
    return (loss_start + loss_end) / 2, (cache_start, cache_end)


def span_loss_backward(dloss, cache):
    """(dstart_logits, dend_logits), each (B, T); zero on padding, whose softmax is exactly 0."""
    cache_start, cache_end = cache
    return cross_entropy_backward(dloss / 2, cache_start), cross_entropy_backward(dloss / 2, cache_end)


def window_targets(windows):
    """Device arrays (starts (B,), ends (B,)) of the windows' target positions."""
    return to_device(np.array([w.start for w in windows])), to_device(np.array([w.end for w in windows]))


# ---------------------------------------------------------------- answers
def answers_from_spans(windows, starts, ends, scores, examples):
    """{question id: {"text", "score"}}: each question's best-scoring span over all its windows, as the
    characters of its context from the first token's start to the last token's end.

    starts, ends, scores: (N,) per window, as best_spans returns them.
    """
    best = {}
    for w, s, e, score in zip(windows, starts, ends, scores):
        if w.example not in best or score > best[w.example][2]:
            best[w.example] = (w.offsets[s][0], w.offsets[e][1], float(score))
    return {examples[i]["id"]: {"text": examples[i]["context"][first:last], "score": score}
            for i, (first, last, score) in best.items()}


def predict_answers(model, windows, examples, batch_size, pad_id, max_answer_length=30, progress=False):
    """({question id: {"text", "score"}}, mean span loss of the windows' targets), without gradients.

    Windows are batched by length; each window's best span (best_spans over its
    context tokens, at most max_answer_length tokens long) competes with the
    other windows of its question on score = start logit + end logit. progress: a bar over the batches.
    """
    model.eval()
    starts, ends = np.zeros(len(windows), dtype=np.int64), np.zeros(len(windows), dtype=np.int64)
    scores, total = np.zeros(len(windows)), 0.0  # total: the span losses summed on the device, read once
    batches = length_batches([w.input_ids for w in windows], batch_size)
    for rows in tqdm(batches, desc="predict", leave=False, disable=not progress):
        batch = [windows[i] for i in rows]
        ids, mask, types, allowed = pad_windows(batch, pad_id)
        start_logits, end_logits = model(ids, mask, types)  # (B, T) each
        total = total + span_loss_forward(start_logits, end_logits, mask, *window_targets(batch))[0] * len(rows)
        starts[rows], ends[rows], scores[rows] = best_spans(to_host(start_logits), to_host(end_logits), allowed,
                                                            max_answer_length)
    return answers_from_spans(windows, starts, ends, scores, examples), to_float(total) / max(len(windows), 1)


class SpanExtractionTask(EpochTask):
    """Extractive QA as the trainer drives it: span loss on windows, EM and F1 on dev questions.

    Training walks the windows epoch by epoch in batches of similar length
    (tasks.EpochBatches, as for classification), each batch padded to its own
    longest window. Evaluation answers every question of
    the split and scores it as the official SQuAD v1.1 script does.
    """

    def __init__(self, model, windows, examples, batch_size, pad_id, max_answer_length=30, eval_split="dev",
                 seed=1337, grad_accum=1, progress=False):
        self.model, self.windows, self.examples = model, windows, examples  # {split: [Window]}, {split: [dict]}
        self.batch_size, self.pad_id, self.max_answer_length = batch_size, pad_id, max_answer_length
        self.eval_split, self.seed, self.grad_accum, self.progress = eval_split, seed, grad_accum, progress
        train = windows["train"]
        self.batch_indices = EpochBatches([len(w.input_ids) for w in train], batch_size, seed)
        self.steps_per_epoch = self.batch_indices.steps_per_epoch
        self.tokens_per_step = batch_size * sum(len(w.input_ids) for w in train) // len(train)

    def train_step(self, it, micro, scale):
        rows = self.batch_indices(it * self.grad_accum + micro)
        batch = [self.windows["train"][i] for i in rows]
        ids, mask, types, _ = pad_windows(batch, self.pad_id)
        start_logits, end_logits = self.model(ids, mask, types)  # (B, T) each
        loss, cache = span_loss_forward(start_logits, end_logits, mask, *window_targets(batch))
        self.model.backward(*span_loss_backward(scale, cache))
        return to_float(loss)

    def answers(self, split):
        """({question id: {"text", "score"}}, mean span loss) of a split."""
        return predict_answers(self.model, self.windows[split], self.examples[split], self.batch_size,
                               self.pad_id, self.max_answer_length, self.progress)

    def evaluate(self, split=None):
        """val_exact_match and val_f1 in percent; val_loss, the span loss of the windows' targets."""
        split = split or self.eval_split
        answers, loss = self.answers(split)
        scores = metrics.squad_scores({q: a["text"] for q, a in answers.items()}, self.examples[split])
        return {"val_loss": loss, "val_exact_match": scores["exact_match"], "val_f1": scores["f1"]}


def read_questions(path):
    """Questions to answer from a JSON-lines file, one {"question": str, "context": str} a line (blank
    lines skipped), as examples with id "<line number>". A bad line is a ValueError naming file and line."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: invalid JSON: {err.msg} (column {err.colno})") from None
            if not (isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("question", "context"))):
                raise ValueError(f'{path}:{number}: expected {{"question": "...", "context": "..."}}')
            examples.append({"id": str(number), "question": record["question"], "context": record["context"]})
    return examples


# ---------------------------------------------------------------- reports
def split_note(directory=None):
    """Which SQuAD files the splits come from; every report carries it."""
    if squad_uses_official_train(directory):
        return "SQuAD v1.1: official train-v1.1.json for training, dev-v1.1.json for evaluation"
    return ("SQuAD v1.1: train-v1.1.json is absent, so train and dev are dev-v1.1.json split 80/20 by article "
            "(seed 0); these scores are not comparable with published SQuAD dev scores")


def write_report(path, split, examples, answers, note, n_wrong=10):
    """EM, F1, the number of questions and the most confident wrong answers, as JSON and markdown."""
    scores = metrics.squad_scores({q: a["text"] for q, a in answers.items()}, examples)
    scores["count"] = len(examples)
    wrong = [e for e in examples if not max(metrics.exact_match(answers[e["id"]]["text"], gold)
                                            for gold in e["answers"]["text"])]
    wrong.sort(key=lambda e: -answers[e["id"]]["score"])
    report = {"task": "qa", "split": split, "note": note, "scores": scores,
              "confident_wrong_answers": [{"id": e["id"], "question": e["question"], "gold": e["answers"]["text"],
                                           "predicted": answers[e["id"]]["text"], "score": answers[e["id"]]["score"]}
                                          for e in wrong[:n_wrong]]}
    write_json(path + ".json", report)
    lines = [f"# qa: {split}", "", note, "",
             f"exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} over {scores['count']} questions", "",
             "## Most confident wrong answers (score: start logit + end logit)", ""]
    lines += [f"- {w['score']:.2f} {w['question']} predicted {w['predicted']!r}, gold "
              + " / ".join(repr(g) for g in dict.fromkeys(w["gold"])) for w in report["confident_wrong_answers"]]
    with open(path + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return report
