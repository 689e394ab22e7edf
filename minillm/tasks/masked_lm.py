"""Masked language modelling and next-sentence prediction, BERT's pretraining objectives.

Masked language modelling. Choose 15% of the ordinary tokens of a
sequence (never [CLS], [SEP] or [PAD]); of those, 80% become [MASK], 10% a
random ordinary token and 10% stay as they are. Only the chosen positions M
are scored:

    L_MLM = -(1 / |M|) sum_{i in M} log p(x_i | x with M corrupted)

Next-sentence prediction (BERT). Segment A is a run of sentences of a
document; B is, half the time, the sentences that follow A, else a run from
another document. From the pooled [CLS] vector:

    L_NSP = -(1 / N) sum_n log p(is_next_n | A_n, B_n),    L = L_MLM + L_NSP

Every epoch draws new pairs and new masks from a generator seeded by
(seed, epoch), so runs repeat exactly and a resumed run sees the same data.
Data-side functions run on the host (`np`).
"""

import collections
import itertools
import math
from collections import namedtuple

from minillm.backend import np, to_device, to_host, xp
from minillm.nn.loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from minillm.training.task import PretrainingTask

IS_NEXT, IS_RANDOM = 0, 1  # NSP labels, as Hugging Face: 0 means B really follows A
SpecialTokens = namedtuple("SpecialTokens", "pad unk cls sep mask")  # the ids of BERT's five specials


def _choose_mlm_positions(candidate, word_start, fraction, rng):
    """Indices to predict in one sequence: round(fraction * #candidates) of them, at least one.

    Candidates are grouped into words (a new word where word_start is True, or
    after a non-candidate); words are visited in random order and taken whole
    while they fit the budget, as BERT's create_pretraining_data does.
    """
    idx = np.flatnonzero(candidate)
    if len(idx) == 0:
        return idx
    budget = max(1, int(round(len(idx) * fraction)))
    starts = np.ones(len(idx), dtype=bool)
    if word_start is not None:
        starts[1:] = word_start[idx[1:]] | (np.diff(idx) > 1)  # a gap (a special token) ends a word
    words = np.split(idx, np.flatnonzero(starts)[1:])
    chosen = []
    for w in rng.permutation(len(words)):
        if len(chosen) + len(words[w]) <= budget:
            chosen.extend(words[w])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def mask_tokens(input_ids, special_ids, mask_id, vocab_size, rng, mlm_probability=0.15,
                word_starts=None):
    """BERT's MLM corruption of a batch: -> (corrupted ids (B, T), labels (B, T)).

    input_ids: (B, T) ints; special_ids: ids never chosen nor used as random
    replacements ([CLS], [SEP], [PAD], [MASK], [UNK], ...); word_starts: (B, T)
    bools for whole-word masking (False on WordPiece continuations `##..`), so a
    word's pieces are chosen together. labels hold the original id at chosen
    positions and IGNORE_INDEX elsewhere. The 80/10/10 decision is per token.
    """
    input_ids = np.asarray(input_ids)
    special = np.isin(input_ids, np.asarray(list(special_ids)))
    ordinary = np.setdiff1d(np.arange(vocab_size), np.asarray(list(special_ids)))
    ids = input_ids.copy()
    labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
    for b in range(ids.shape[0]):
        ws = None if word_starts is None else np.asarray(word_starts[b], dtype=bool)
        pos = _choose_mlm_positions(~special[b], ws, mlm_probability, rng)
        labels[b, pos] = input_ids[b, pos]
        u = rng.random(len(pos))
        ids[b, pos[u < 0.8]] = mask_id
        swap = pos[(u >= 0.8) & (u < 0.9)]
        ids[b, swap] = rng.choice(ordinary, size=len(swap))
    return ids, labels


SegmentPair = namedtuple("SegmentPair", "tokens_a tokens_b is_random_next doc_a doc_b")


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Shorten the longer list, one token at a time from its front or back (at random), in place."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        del longer[0 if rng.random() < 0.5 else -1]  # both ends, so no end is always intact


def _other_document(n_docs, doc_index, rng):
    """A uniformly random document index other than doc_index."""
    j = int(rng.integers(n_docs - 1))
    return j + (j >= doc_index)


def document_pairs(documents, doc_index, max_seq_length, rng, short_seq_prob=0.1):
    """NSP pairs from one document, as BERT's create_instances_from_document.

    Sentences are gathered until they reach a target length (max_seq_length - 3,
    room for [CLS] A [SEP] B [SEP]; with probability short_seq_prob a random
    shorter target, so the model also sees short inputs). A is the first
    1..k-1 of the k gathered sentences; B is the rest, or (always when k = 1,
    else with probability 1/2) a run of sentences from another document, whose
    unused sentences of this document are then gathered again.
    """
    document = documents[doc_index]
    max_num_tokens = max_seq_length - 3
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    pairs, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            if len(chunk) == 1 or rng.random() < 0.5:
                doc_b = _other_document(len(documents), doc_index, rng)
                other = documents[doc_b]
                tokens_b = []
                for sentence in other[int(rng.integers(len(other))):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end  # the unused sentences start the next chunk
                is_random = True
            else:
                doc_b = doc_index
                tokens_b = [t for s in chunk[a_end:] for t in s]
                is_random = False
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            pairs.append(SegmentPair(tokens_a, tokens_b, is_random, doc_index, doc_b))
            chunk, length = [], 0
        i += 1
    return pairs


def nsp_pairs(documents, max_seq_length, rng, short_seq_prob=0.1):
    """NSP pairs from every document, in document order (shuffle them for training).

    documents: a list of documents, each a list of sentences, each a list of
    token ids. Empty sentences are dropped; at least two non-empty documents
    are needed, so that a random B never comes from A's document.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for [CLS] A [SEP] B [SEP]")
    documents = [[list(s) for s in doc if len(s)] for doc in documents]
    documents = [doc for doc in documents if doc]
    if len(documents) < 2:
        raise ValueError(f"NSP needs at least 2 non-empty documents, got {len(documents)}")
    pairs = []
    for d in range(len(documents)):
        pairs.extend(document_pairs(documents, d, max_seq_length, rng, short_seq_prob))
    return pairs


def pack_pairs(pairs, max_seq_length, cls_id, sep_id, pad_id):
    """[CLS] A [SEP] B [SEP], padded: -> dict of int64 arrays ready for BertForPreTraining.

    input_ids, token_type_ids (0 for [CLS] A [SEP], 1 for B [SEP]) and
    attention_mask, each (N, max_seq_length); next_sentence_label (N,).
    """
    n = len(pairs)
    batch = {"input_ids": np.full((n, max_seq_length), pad_id, dtype=np.int64),
             "token_type_ids": np.zeros((n, max_seq_length), dtype=np.int64),
             "attention_mask": np.zeros((n, max_seq_length), dtype=np.int64),
             "next_sentence_label": np.array([IS_RANDOM if p.is_random_next else IS_NEXT for p in pairs],
                                             dtype=np.int64)}
    for r, p in enumerate(pairs):
        tokens = [cls_id, *p.tokens_a, sep_id, *p.tokens_b, sep_id]
        if len(tokens) > max_seq_length:
            raise ValueError(f"pair {r} has {len(tokens)} tokens, more than max_seq_length={max_seq_length}")
        batch["input_ids"][r, :len(tokens)] = tokens
        batch["token_type_ids"][r, len(p.tokens_a) + 2:len(tokens)] = 1
        batch["attention_mask"][r, :len(tokens)] = 1
    return batch


def mlm_nsp_loss(model, batch, backward=True, scale=1.0):
    """L = L_MLM (+ L_NSP when the batch has next_sentence_label), and the gradients.

    batch: input_ids, token_type_ids, attention_mask, labels (MLM, IGNORE_INDEX
    where not scored) and optionally next_sentence_label. Only the scored
    positions go through the MLM head. With backward, every parameter's .grad
    receives dL/dparam (added, so zero_grad first). Returns (loss, metrics).
    """
    labels = np.asarray(to_host(batch["labels"]))  # (B, T)
    scored = labels != IGNORE_INDEX
    targets = xp.asarray(labels[scored])  # (N,), in the row-major order the model returns its rows
    scores, nsp_logits = model(batch["input_ids"], batch.get("token_type_ids"), batch.get("attention_mask"),
                               mlm_mask=scored)  # (N, V), (B, 2)
    mlm_loss, mlm_cache = cross_entropy_forward(scores, targets)
    loss, dnsp = mlm_loss, None
    numbers = [mlm_loss, (scores.argmax(-1) == targets).sum()]  # the step's numbers, read back together
    if "next_sentence_label" in batch:
        nsp_targets = xp.asarray(batch["next_sentence_label"])
        nsp_loss, nsp_cache = cross_entropy_forward(nsp_logits, nsp_targets)
        loss = loss + nsp_loss
        numbers += [nsp_loss, (nsp_logits.argmax(-1) == nsp_targets).sum()]
    if backward:
        # dL/dL_MLM = dL/dL_NSP = 1: the two losses are simply added
        if "next_sentence_label" in batch:
            dnsp = cross_entropy_backward(scale, nsp_cache)
        model.backward(cross_entropy_backward(scale, mlm_cache), dnsp)
    total, *numbers = to_host(xp.stack([loss] + numbers)).tolist()  # one transfer, not one per number
    metrics = {"mlm_loss": numbers[0], "mlm_correct": int(numbers[1]), "mlm_count": len(targets)}
    if "next_sentence_label" in batch:
        metrics.update(nsp_loss=numbers[2], nsp_correct=int(numbers[3]), nsp_count=len(nsp_targets))
    return total, metrics


def pretraining_batches(documents, batch_size, max_seq_length, special, vocab_size, seed, epoch=0,
                        nsp=True, mlm_probability=0.15, short_seq_prob=0.1, is_continuation=None):
    """One epoch of BERT batches: dicts of int64 arrays for `mlm_nsp_loss`.

    Keys: input_ids, token_type_ids, attention_mask, labels (MLM) and, with nsp,
    next_sentence_label; every batch has batch_size rows (the last partial one
    is dropped). special: SpecialTokens. is_continuation: bool per vocabulary id
    (True for WordPiece `##` pieces) to mask whole words.
    """
    rng = np.random.default_rng([seed, epoch])
    pairs = nsp_pairs(documents, max_seq_length, rng, short_seq_prob)
    order = rng.permutation(len(pairs))
    specials = tuple(special)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = pack_pairs([pairs[i] for i in order[start:start + batch_size]], max_seq_length,
                           special.cls, special.sep, special.pad)
        starts = None if is_continuation is None else ~np.asarray(is_continuation)[batch["input_ids"]]
        batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], specials, special.mask, vocab_size,
                                                          rng, mlm_probability, starts)
        if not nsp:
            del batch["next_sentence_label"]
        yield batch


class MaskedLMTask(PretrainingTask):
    """BERT pretraining: masked-token prediction, with next-sentence prediction unless nsp=False.

    Batches come from pretraining_batches, an epoch at a time
    from a generator seeded by (seed, epoch); batch number it * grad_accum +
    micro is the same in every run, so a resumed run replays the stream up to
    its step (a few milliseconds a batch) and goes on identically. The held-out
    set is eval_iters batches of EVAL_ROWS pairs whatever the training batch
    size, so runs with different batch sizes are scored on the same pairs.
    """

    EVAL_ROWS = 32

    def __init__(self, model, train_docs, val_docs, batch_size, max_seq_length, special, vocab_size,
                 is_continuation=None, nsp=True, eval_iters=20, seed=1337, grad_accum=1):
        self.model, self.train_docs, self.seed, self.grad_accum = model, train_docs, seed, grad_accum
        self.options = dict(batch_size=batch_size, max_seq_length=max_seq_length, special=special,
                            vocab_size=vocab_size, nsp=nsp, is_continuation=is_continuation)
        self.tokens_per_step = batch_size * max_seq_length
        self.val_batches = list(itertools.islice(
            pretraining_batches(val_docs, seed=seed + 1, **{**self.options, "batch_size": self.EVAL_ROWS}), eval_iters))
        self.epoch, self.position, self.stream = 0, 0, None

    def batch(self, index):
        """The index-th training batch of the run (epochs follow one another)."""
        if self.stream is None or index < self.position:
            self.epoch, self.position = 0, 0
            self.stream = pretraining_batches(self.train_docs, seed=self.seed, epoch=0, **self.options)
        while True:
            batch = next(self.stream, None)
            if batch is None:  # epoch done: new pairs, new masks
                self.epoch += 1
                self.stream = pretraining_batches(self.train_docs, seed=self.seed, epoch=self.epoch, **self.options)
                continue
            self.position += 1
            if self.position - 1 == index:
                return {k: to_device(v) for k, v in batch.items()}

    def train_step(self, it, micro, scale):
        loss, _ = mlm_nsp_loss(self.model, self.batch(it * self.grad_accum + micro), backward=True, scale=scale)
        return loss

    def evaluate(self):
        """Held-out masked-token accuracy and perplexity, NSP accuracy; val_loss = L_MLM + L_NSP."""
        self.model.eval()
        totals = collections.Counter()
        for batch in self.val_batches:
            _, m = mlm_nsp_loss(self.model, {k: to_device(v) for k, v in batch.items()}, backward=False)
            totals.update(mlm_nll=m["mlm_loss"] * m["mlm_count"], mlm_correct=m["mlm_correct"],
                          mlm_count=m["mlm_count"], nsp_nll=m.get("nsp_loss", 0.0) * m.get("nsp_count", 0),
                          nsp_correct=m.get("nsp_correct", 0), nsp_count=m.get("nsp_count", 0))
        mlm_loss = totals["mlm_nll"] / max(totals["mlm_count"], 1)
        out = {"mlm_loss": mlm_loss, "mlm_accuracy": totals["mlm_correct"] / max(totals["mlm_count"], 1),
               "mlm_perplexity": math.exp(mlm_loss), "val_loss": mlm_loss}
        if totals["nsp_count"]:
            nsp_loss = totals["nsp_nll"] / totals["nsp_count"]
            out.update(nsp_loss=nsp_loss, nsp_accuracy=totals["nsp_correct"] / totals["nsp_count"],
                       val_loss=mlm_loss + nsp_loss)
        return out

    full_val_scope = "the masked tokens of the fixed held-out batches"

    def full_val_loss(self, max_tokens=None, progress=False):
        """L_MLM over the masked tokens of the fixed validation batches (exp of it: masked-token perplexity)."""
        return self.evaluate()["mlm_loss"]
