"""Permutation language modelling, XLNet's pretraining objective.

Permutation language modelling. Sample a factorization order z, a
permutation of the T real (non-padding) positions, and predict tokens
autoregressively in that order; only the last T / K of the order are
predicted (partial prediction: they have the most context):

    L_PLM = -(1 / |P|) sum_{t in P} log p(x_{z_t} | x_{z_1} .. x_{z_{t-1}}),   P = the last T / K ranks

Two masks come from the ranks r(i) (the step of z at which position i comes):
the content stream at i sees j iff r(j) <= r(i) (itself included); the
query stream at i sees j iff r(j) < r(i), never itself, so it knows where
its target is (its position) but not what it is.
"""

import math

from tqdm import tqdm

from minillm.backend import host_rng, np, to_host, xp
from minillm.nn.loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from minillm.tasks.causal_lm import FULL_VAL_SCOPE, FULL_VAL_TOKENS, ar_blocks
from minillm.training.task import PretrainingTask


def plm_masks(ranks, real):
    """XLNet's two attention masks from the factorization ranks: -> (content, query), each (B, T, T).

    ranks: (B, T) ints, the step of the order at which each position comes;
    real: (B, T) bools, False on padding, which no position ever sees.
    content[b, i, j] = r(j) <= r(i); query[b, i, j] = r(j) < r(i).
    """
    before = ranks[:, None, :] < ranks[:, :, None]  # (B, T, T): [b, i, j] = r(j) < r(i)
    visible = real[:, None, :]  # (B, 1, T): keys that are real tokens
    content = (before | np.eye(ranks.shape[1], dtype=bool)) & visible
    return content, before & visible


def permutation_lm_batch(input_ids, rng, num_predict=None, predict_ratio=1 / 6, pad_id=None):
    """One factorization order per sequence, its masks and its targets (host arrays).

    input_ids: (B, T) ints; positions holding pad_id are left out of the order.
    Each sequence predicts its last num_predict ranks (default
    round(predict_ratio * n), n its real length), at most n - 1 so that every
    predicted position has at least one token to see. Returns a dict:
    input_ids, content_mask and query_mask (B, T, T) bools, labels (B, T)
    (the token where predicted, IGNORE_INDEX elsewhere) and perm_ranks (B, T).
    """
    input_ids = np.asarray(input_ids)
    B, T = input_ids.shape
    real = np.ones((B, T), dtype=bool) if pad_id is None else input_ids != pad_id
    ranks = np.full((B, T), T, dtype=np.int64)  # padding ranks after every real token
    labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    for b in range(B):
        positions = np.flatnonzero(real[b])
        n = len(positions)
        if n < 2:
            raise ValueError(f"sequence {b} has {n} real tokens; permutation LM needs at least 2")
        order = positions[rng.permutation(n)]  # z: order[t] is the position predicted at step t
        ranks[b, order] = np.arange(n)
        k = num_predict if num_predict is not None else int(round(predict_ratio * n))
        predicted = order[n - min(max(k, 1), n - 1):]
        labels[b, predicted] = input_ids[b, predicted]
    content, query = plm_masks(ranks, real)
    return {"input_ids": input_ids.astype(np.int64), "content_mask": content, "query_mask": query,
            "labels": labels, "perm_ranks": ranks}


def plm_loss(model, batch, backward=True, scale=1.0):
    """L_PLM over the predicted positions, and (with backward) every parameter's gradient.

    batch: a permutation_lm_batch (host or device arrays). Only the predicted
    positions go through the LM head. Returns (loss, metrics).
    """
    labels = np.asarray(to_host(batch["labels"]))  # (B, T)
    predicted = labels != IGNORE_INDEX
    targets = xp.asarray(labels[predicted])  # (N,), in the row-major order the model returns its rows
    logits = model(xp.asarray(batch["input_ids"]), xp.asarray(batch["content_mask"]),
                   xp.asarray(batch["query_mask"]), target_mask=predicted)  # (N, V)
    loss, cache = cross_entropy_forward(logits, targets)
    if backward:
        model.backward(cross_entropy_backward(scale, cache))
    total, correct = to_host(xp.stack([loss, (logits.argmax(-1) == targets).sum()])).tolist()  # one transfer
    return total, {"plm_loss": total, "plm_count": len(targets), "plm_correct": int(correct)}


class PermutationLMTask(PretrainingTask):
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

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS, progress=False):
        """Mean PLM loss over consecutive windows of the validation tokens (the first max_tokens), fixed orders."""
        self.model.eval()
        ids = self.val_ids[:max_tokens]
        n = len(ids) // self.block_size
        windows = ids[:n * self.block_size].reshape(n, self.block_size)
        nll = count = 0
        rows = max(self.batch_size, 256)  # no backward here, so larger batches fit
        for start in tqdm(range(0, n, rows), desc="held-out", leave=False, disable=not progress):
            batch = permutation_lm_batch(windows[start:start + rows], host_rng([self.seed, 2, start]),
                                         **self.predict)
            loss, m = plm_loss(self.model, batch, backward=False)
            nll, count = nll + loss * m["plm_count"], count + m["plm_count"]
        return nll / count
