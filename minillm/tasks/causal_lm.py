"""Causal (autoregressive) language modelling, GPT's objective.

Predict every next token from the ones before it,

    L_AR = -(1 / T) sum_t log p(x_{t+1} | x_1 .. x_t)

so the targets are the inputs shifted left by one, and the causal mask keeps
position t from seeing x_{t+1}. Batches are random windows of a token stream,
drawn from generators seeded by (seed, it, micro), never from a running
generator, so a resumed run sees the same batches.
"""

import math

from tqdm import tqdm

from minillm import backend
from minillm.backend import host_rng, np, to_device, to_float, to_host, xp
from minillm.data.lm_data import document_separator
from minillm.nn.loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from minillm.training.task import PretrainingTask

FULL_VAL_TOKENS = 1_000_000  # every language model's final score: over the first this many held-out tokens


FULL_VAL_SCOPE = "the first 1M held-out tokens (all, if fewer)"


def ar_blocks(ids, batch_size, block_size, rng):
    """B random windows of a token stream -> inputs x and targets y = x shifted by one.

    ids: 1-D host array; returns device arrays x, y, each (B, T).
    """
    if len(ids) <= block_size:
        raise ValueError(f"token stream of {len(ids)} ids is too short for block_size {block_size}")
    starts = rng.integers(0, len(ids) - block_size, batch_size)  # (B,)
    windows = ids[starts[:, None] + np.arange(block_size + 1)]  # (B, T + 1)
    return to_device(windows[:, :-1].astype(np.int64)), to_device(windows[:, 1:].astype(np.int64))


def ar_loss(logits, targets, ignore_index=IGNORE_INDEX):
    """L_AR for logits (B, T, V) and targets (B, T); returns (loss, cache for ar_loss_backward)."""
    B, T, V = logits.shape
    loss, cache = cross_entropy_forward(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index)
    return loss, (cache, logits.shape)


def ar_loss_backward(dloss, cache):
    """dL/dlogits (B, T, V)."""
    ce_cache, shape = cache
    return cross_entropy_backward(dloss, ce_cache).reshape(shape)


def sample_start(tokenizer):
    """The ids a sample starts from: the document separator (BPE's <|endoftext|>, WordPiece's [SEP]), else a
    newline where the vocabulary has one (Tiny Shakespeare's characters), else the vocabulary's first token
    (WikiText-2's characters have no newline: its lines are its documents)."""
    separator = document_separator(tokenizer)
    if separator:
        return separator
    return tokenizer.encode("\n") if "\n" in getattr(tokenizer, "stoi", {}) else [0]


def sample_text(model, tokenizer, n_tokens, seed):
    """n_tokens sampled from sample_start(tokenizer) at temperature 0.8 among the 200 likeliest, decoded."""
    start = to_device([sample_start(tokenizer)])
    out = model.generate(start, n_tokens, temperature=0.8, top_k=200, rng=backend.default_rng(seed))
    return tokenizer.decode(backend.to_host(out[0]).tolist())


class CausalLMTask(PretrainingTask):
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
        return to_float(loss)

    def evaluate(self):
        """Mean loss over the same eval_iters batches of each split every time (comparable across evals)."""
        self.model.eval()
        out = {}
        for split in ("train", "val"):
            losses = to_host(xp.stack([ar_loss(self.model(x), y)[0] for x, y in  # read back once per split
                                       (self.batch(split, 1, k) for k in range(self.eval_iters))])).tolist()
            out[f"{split}_loss"] = sum(losses) / len(losses)
        out["val_perplexity"] = math.exp(out["val_loss"])
        return out

    full_val_scope = FULL_VAL_SCOPE

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS, progress=False):
        """Mean loss over the validation tokens (the first max_tokens), in consecutive windows of block_size.

        Each window starts with no context, so a token sees (block_size - 1) / 2
        earlier tokens on average: the usual measure for a fixed-context model.
        """
        self.model.eval()
        ids = self.val_ids[:max_tokens + 1]
        n = (len(ids) - 1) // self.block_size
        x = ids[:n * self.block_size].reshape(n, self.block_size).astype(np.int64)
        y = ids[1:n * self.block_size + 1].reshape(n, self.block_size).astype(np.int64)
        losses = []  # on the device until the end: one read back, not one per batch
        for start in tqdm(range(0, n, self.batch_size), desc="held-out", leave=False, disable=not progress):
            loss, _ = ar_loss(self.model(to_device(x[start:start + self.batch_size])),
                              to_device(y[start:start + self.batch_size]))
            losses.append(loss)
        total = 0.0
        for start, loss in zip(range(0, n, self.batch_size), to_host(xp.stack(losses)).tolist()):
            total += loss * len(x[start:start + self.batch_size])
        return total / n
