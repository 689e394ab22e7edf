"""Truncated backpropagation through time: next-token prediction for a recurrent model (the LSTM LM)."""

import math

from tqdm import tqdm

from minillm.backend import np, to_device, to_float, to_host, xp
from minillm.tasks.causal_lm import FULL_VAL_SCOPE, FULL_VAL_TOKENS, ar_loss, ar_loss_backward
from minillm.training.task import PretrainingTask


class TruncatedBPTTTask(PretrainingTask):
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
        return to_float(loss)

    def evaluate(self):
        """Loss over the first eval_iters windows of the train and validation streams, state carried."""
        self.model.eval()
        out = {f"{split}_loss": self.stream_loss(streams, self.eval_iters)
               for split, streams in (("train", self.train_streams), ("val", self.val_streams))}
        out["val_perplexity"] = math.exp(out["val_loss"])
        return out

    full_val_scope = FULL_VAL_SCOPE

    def full_val_loss(self, max_tokens=FULL_VAL_TOKENS, progress=False):
        """Mean loss over the first max_tokens validation tokens, cut into B streams, the state carried through each."""
        self.model.eval()
        return self.stream_loss(self.streams(self.val_ids[:max_tokens + 1]), None, progress)

    def stream_loss(self, streams, max_windows, progress=False):
        n = (streams.shape[1] - 1 + self.block_size - 1) // self.block_size
        n = n if max_windows is None else min(n, max_windows)
        state, losses, sizes = None, [], []  # losses stay on the device until one read back at the end
        for k in tqdm(range(n), desc="held-out", leave=False, disable=not progress):
            x, y = self.window(streams, k)
            logits = self.model(x, state)
            state = self.model.final_state
            losses.append(ar_loss(logits, y)[0])
            sizes.append(y.size)
        total, count = 0.0, 0
        for loss, size in zip(to_host(xp.stack(losses)).tolist(), sizes):
            total += loss * size
            count += size
        return total / count

    def state_dict(self):
        """The carried state, saved with each checkpoint."""
        if self.state is None:
            return {}
        return {"h": self.state[0], "c": self.state[1]}

    def load_state_dict(self, tensors):
        self.state = (to_device(tensors["h"]), to_device(tensors["c"])) if tensors else None
