"""Tasks: a model, its data and its objective, as the trainer drives them.

A task has `tokens_per_step` (per micro-batch), `train_step(it, micro, scale)`
(forward + backward of one micro-batch, loss scaled by `scale` in the
gradient; returns the unscaled loss) and `evaluate()` (a dict of metrics).
Batches are drawn from generators seeded by (seed, it, micro), never from a
running generator, so a resumed run sees the same batches.
"""

import math

from minillm.backend import host_rng, np
from minillm.objectives import ar_blocks, ar_loss, ar_loss_backward


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
