"""Tasks: a model, its data and its objective, as the trainer drives them.

A task has `tokens_per_step` (per micro-batch), `train_step(it, micro, scale)`
(forward + backward of one micro-batch, loss scaled by `scale` in the
gradient; returns the unscaled loss) and `evaluate()` (a dict of metrics).
Batches are drawn from generators seeded by (seed, it, micro), never from a
running generator, so a resumed run sees the same batches.
"""

import collections
import itertools
import math

from minillm import metrics
from minillm.backend import host_rng, np, to_device, to_host
from minillm.nn.functional import softmax_forward
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.objectives import ar_blocks, ar_loss, ar_loss_backward, mlm_nsp_loss, permutation_lm_batch, plm_loss
from minillm.pretraining_data import pretraining_batches


FULL_VAL_TOKENS = 1_000_000  # every language model's final score: over the first this many held-out tokens
FULL_VAL_SCOPE = "the first 1M held-out tokens (all, if fewer)"


class CausalLMTask:
    """Next-token prediction on random windows of a token stream (GPT's objective)."""

    def __init__(self, model, train_ids, val_ids, batch_size, block_size, eval_iters=20, seed=1337):
        self.model, self.train_ids, self.val_ids = model, np.asarray(train_ids), np.asarray(val_ids)
        self.batch_size, self.block_size, self.eval_iters, self.seed = batch_size, block_size, eval_iters, seed
        self.tokens_per_step = batch_size * block_size

    def batch(self, split, *key):
        ids = self.train_ids if split == "train" else self.val_ids
        return ar_blocks(ids, self.batch_size, self.block_size, host_rng([self.seed, *key]))

    def train_step(self, it, micro, scale):
        x, y = self.batch("train", 0, it, micro)
        logits = self.model(x)  # (B, T, V)
        loss, cache = ar_loss(logits, y)
        self.model.backward(ar_loss_backward(scale, cache))
        return float(loss)

    def evaluate(self):
        """Mean loss over the same eval_iters batches of each split every time (comparable across evals)."""
        self.model.eval()
        out = {}
        for split in ("train", "val"):
            losses = [float(ar_loss(self.model(x), y)[0]) for x, y in
                      (self.batch(split, 1, k) for k in range(self.eval_iters))]
            out[f"{split}_loss"] = sum(losses) / len(losses)
        out["val_perplexity"] = math.exp(out["val_loss"])
        return out

    full_val_scope = FULL_VAL_SCOPE

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS):
        """Mean loss over the validation tokens (the first max_tokens), in consecutive windows of block_size.

        Each window starts with no context, so a token sees (block_size - 1) / 2
        earlier tokens on average: the usual measure for a fixed-context model.
        """
        self.model.eval()
        ids = self.val_ids[:max_tokens + 1]
        n = (len(ids) - 1) // self.block_size
        x = ids[:n * self.block_size].reshape(n, self.block_size).astype(np.int64)
        y = ids[1:n * self.block_size + 1].reshape(n, self.block_size).astype(np.int64)
        total = 0.0
        for start in range(0, n, self.batch_size):
            loss, _ = ar_loss(self.model(to_device(x[start:start + self.batch_size])),
                              to_device(y[start:start + self.batch_size]))
            total += float(loss) * len(x[start:start + self.batch_size])
        return total / n


class TruncatedBPTTTask:
    """Next-token prediction for a recurrent model over B parallel streams, state carried between steps.

    The training ids are cut into B contiguous streams (B, L); step `it` reads
    window (it mod steps_per_epoch) of each, starting from the state the
    previous step left, so the memory runs through the text while each
    backward stops at its window (truncated BPTT). The carried state is part of
    the checkpoint (`state_dict`), which keeps resume exact.
    """

    def __init__(self, model, train_ids, val_ids, batch_size, block_size, eval_iters=20, grad_accum=1):
        self.model, self.batch_size, self.block_size, self.eval_iters = model, batch_size, block_size, eval_iters
        self.grad_accum = grad_accum  # micro-batches per step: each reads the next window
        self.val_ids = val_ids
        self.train_streams, self.val_streams = self.streams(train_ids), self.streams(val_ids)
        self.steps_per_epoch = (self.train_streams.shape[1] - 1) // block_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(train_ids)} training ids are too few for {batch_size} streams of {block_size}")
        self.tokens_per_step = batch_size * block_size
        self.state = None

    def streams(self, ids):
        ids = np.asarray(ids)
        length = len(ids) // self.batch_size
        return ids[:length * self.batch_size].reshape(self.batch_size, length).astype(np.int64)  # (B, L)

    def window(self, streams, k):
        start = k * self.block_size
        stop = min(start + self.block_size, streams.shape[1] - 1)  # the last id is only ever a target
        return to_device(streams[:, start:stop]), to_device(streams[:, start + 1:stop + 1])

    def train_step(self, it, micro, scale):
        k = (it * self.grad_accum + micro) % self.steps_per_epoch
        if k == 0:
            self.state = None  # a new pass over the text starts from zeros
        x, y = self.window(self.train_streams, k)
        logits = self.model(x, self.state)  # (B, T, V)
        self.state = self.model.final_state
        loss, cache = ar_loss(logits, y)
        self.model.backward(ar_loss_backward(scale, cache))
        return float(loss)

    def evaluate(self):
        """Loss over the first eval_iters windows of the train and validation streams, state carried."""
        self.model.eval()
        out = {f"{split}_loss": self.stream_loss(streams, self.eval_iters)
               for split, streams in (("train", self.train_streams), ("val", self.val_streams))}
        out["val_perplexity"] = math.exp(out["val_loss"])
        return out

    full_val_scope = FULL_VAL_SCOPE

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS):
        """Mean loss over the first max_tokens validation tokens, cut into B streams, the state carried through each."""
        self.model.eval()
        return self.stream_loss(self.streams(self.val_ids[:max_tokens + 1]), None)

    def stream_loss(self, streams, max_windows):
        n = (streams.shape[1] - 1 + self.block_size - 1) // self.block_size
        n = n if max_windows is None else min(n, max_windows)
        state, total, count = None, 0.0, 0
        for k in range(n):
            x, y = self.window(streams, k)
            logits = self.model(x, state)
            state = self.model.final_state
            total += float(ar_loss(logits, y)[0]) * y.size
            count += y.size
        return total / count

    def state_dict(self):
        """The carried state, saved with each checkpoint."""
        if self.state is None:
            return {}
        return {"h": self.state[0], "c": self.state[1]}

    def load_state_dict(self, tensors):
        self.state = (to_device(tensors["h"]), to_device(tensors["c"])) if tensors else None


def predict_probabilities(model, sequences, batch_size, pad_id, per_token=False):
    """A classifier's class probabilities (N, K) on the host, in the order given;
    per_token: a token classifier's, one (T_i, K) array per sequence."""
    model.eval()
    return map_by_length(lambda ids, mask: softmax_forward(model(ids, mask))[0], sequences, batch_size, pad_id,
                         per_token)


def map_by_length(fn, sequences, batch_size, pad_id, per_token=False):
    """Stack fn(ids, attention_mask) -> (B, ...) over all id lists, on the host, in the order given.

    Sequences are batched by length, so each batch is padded only a little.
    per_token: fn gives one row per position, (B, T, ...); each sequence's
    rows are cut to its own length and a list of (T_i, ...) arrays returned.
    """
    rows_out = [None] * len(sequences)
    for rows in length_batches(sequences, batch_size):
        for i, row in zip(rows, to_host(fn(*pad_batch([sequences[i] for i in rows], pad_id)))):
            rows_out[i] = row[:len(sequences[i])] if per_token else row
    return rows_out if per_token else np.stack(rows_out)


def length_batches(sequences, batch_size):
    """Lists of row indices, batch_size at a time in order of length, so each batch pads little."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(sequences, pad_id):
    """Right-pad id lists to the longest: (ids (B, T), attention_mask (B, T)) as device arrays."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return to_device(ids), to_device(mask)


def epoch_batches(lengths, batch_size, seed, epoch, group_by_length=True, batches_per_group=50):
    """The batches (arrays of example indices) of one epoch, in an order fixed by (seed, epoch).

    With group_by_length (as Hugging Face's Trainer offers), the shuffled
    examples are cut into groups of `batches_per_group` batches, each group is
    sorted by length and cut into batches, and the batches are shuffled: a
    batch holds texts of similar length, so padding to its longest wastes
    little compute, while every epoch still mixes the data differently.
    """
    rng = host_rng([seed, 2, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    lengths = np.asarray(lengths)
    group = batch_size * batches_per_group
    batches = []
    for g in range(0, len(order), group):
        members = order[g:g + group]
        members = members[np.argsort(lengths[members], kind="stable")]  # (<= group,) short to long
        batches += [members[k:k + batch_size] for k in range(0, len(members), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class EpochBatches:
    """batches(index) -> the example indices of training batch number `index`, walking the
    examples epoch after epoch, each epoch cut by epoch_batches (computed once per epoch)."""

    def __init__(self, lengths, batch_size, seed, group_by_length=True):
        self.lengths, self.batch_size, self.seed, self.group_by_length = list(lengths), batch_size, seed, group_by_length
        self.steps_per_epoch = -(-len(self.lengths) // batch_size)
        self.epoch = self.batches = None

    def __call__(self, index):
        epoch, k = divmod(index, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches = epoch_batches(self.lengths, self.batch_size, self.seed, epoch, self.group_by_length)
        return self.batches[k]


class SequenceClassificationTask:
    """One label per text: cross-entropy on the model's (B, K) logits, accuracy and macro-F1 on dev.

    Training walks the examples epoch by epoch in batches of similar length
    (epoch_batches), each padded only to its own longest text (dynamic
    padding). Evaluation sorts by length so batches carry little padding.
    """

    def __init__(self, model, encoded, labels, batch_size, pad_id, eval_split="dev", seed=1337, grad_accum=1,
                 group_by_length=True):
        self.model, self.encoded, self.labels = model, encoded, labels  # {split: [ids]}, {split: [int]}
        self.grad_accum = grad_accum
        self.batch_size, self.pad_id, self.eval_split, self.seed = batch_size, pad_id, eval_split, seed
        self.batch_indices = EpochBatches(map(len, encoded["train"]), batch_size, seed, group_by_length)
        self.steps_per_epoch = self.batch_indices.steps_per_epoch
        self.tokens_per_step = batch_size * sum(map(len, encoded["train"])) // len(encoded["train"])
        self.last_predictions = None

    def train_step(self, it, micro, scale):
        rows = self.batch_indices(it * self.grad_accum + micro)
        ids, mask = pad_batch([self.encoded["train"][i] for i in rows], self.pad_id)
        logits = self.model(ids, mask)  # (B, K)
        loss, cache = cross_entropy_forward(logits, to_device(np.array([self.labels["train"][i] for i in rows])))
        self.model.backward(cross_entropy_backward(scale, cache))
        return float(loss)

    def predict(self, sequences):
        return predict_probabilities(self.model, sequences, self.batch_size, self.pad_id)

    def evaluate(self, split=None):
        split = split or self.eval_split
        probs = self.predict(self.encoded[split])
        gold = self.labels[split]
        pred = probs.argmax(axis=1).tolist()
        self.last_predictions = (split, probs)
        nll = -np.log(np.maximum(probs[np.arange(len(gold)), gold], 1e-30)).mean()
        return {"val_loss": float(nll), "val_accuracy": metrics.accuracy(gold, pred),
                "val_macro_f1": metrics.macro_f1(gold, pred, labels=range(probs.shape[1]))}


class MaskedLMTask:
    """BERT pretraining: masked-token prediction, with next-sentence prediction unless nsp=False.

    Batches come from pretraining_data.pretraining_batches, an epoch at a time
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

    def full_val_loss(self, max_tokens=None):
        """L_MLM over the masked tokens of the fixed validation batches (exp of it: masked-token perplexity)."""
        return self.evaluate()["mlm_loss"]


class PermutationLMTask:
    """XLNet pretraining: permutation LM on random windows of a token stream.

    Each window gets its own factorization order and predicts its last
    num_predict (default round(predict_ratio * T)) tokens; window and order
    come from one generator seeded by (seed, 0, it, micro), so resume is exact.
    """

    def __init__(self, model, train_ids, val_ids, batch_size, block_size, num_predict=None, predict_ratio=1 / 6,
                 eval_iters=20, seed=1337):
        self.model, self.train_ids, self.val_ids = model, np.asarray(train_ids), np.asarray(val_ids)
        self.batch_size, self.block_size, self.eval_iters, self.seed = batch_size, block_size, eval_iters, seed
        self.predict = dict(num_predict=num_predict, predict_ratio=predict_ratio)
        self.tokens_per_step = batch_size * block_size

    def batch(self, split, *key):
        ids = self.train_ids if split == "train" else self.val_ids
        rng = host_rng([self.seed, *key])
        x, _ = ar_blocks(ids, self.batch_size, self.block_size, rng)  # the window; its shifted twin is unused
        return permutation_lm_batch(to_host(x), rng, **self.predict)

    def train_step(self, it, micro, scale):
        loss, _ = plm_loss(self.model, self.batch("train", 0, it, micro), backward=True, scale=scale)
        return loss

    def evaluate(self):
        """Held-out PLM loss (nats per predicted token) and accuracy over the same eval_iters batches every time."""
        self.model.eval()
        nll = correct = count = 0
        for k in range(self.eval_iters):
            loss, m = plm_loss(self.model, self.batch("val", 1, k), backward=False)
            nll, correct, count = nll + loss * m["plm_count"], correct + m["plm_correct"], count + m["plm_count"]
        return {"plm_loss": nll / count, "val_loss": nll / count, "plm_perplexity": math.exp(nll / count),
                "plm_accuracy": correct / count}

    full_val_scope = FULL_VAL_SCOPE

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS):
        """Mean PLM loss over consecutive windows of the validation tokens (the first max_tokens), fixed orders."""
        self.model.eval()
        ids = self.val_ids[:max_tokens]
        n = len(ids) // self.block_size
        windows = ids[:n * self.block_size].reshape(n, self.block_size)
        nll = count = 0
        rows = max(self.batch_size, 256)  # no backward here, so larger batches fit
        for start in range(0, n, rows):
            batch = permutation_lm_batch(windows[start:start + rows], host_rng([self.seed, 2, start]),
                                         **self.predict)
            loss, m = plm_loss(self.model, batch, backward=False)
            nll, count = nll + loss * m["plm_count"], count + m["plm_count"]
        return nll / count
