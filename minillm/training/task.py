"""The Task protocol: what a task gives the Trainer, and what the commands read from one.

A task is a model with its data and its objective. The Trainer (trainer.py)
owns everything else: the schedule, gradient accumulation and clipping,
AdamW, checkpoints and exact resume. Every task in minillm/tasks/ subclasses
Task; the commands that build runs rely on the two refinements below it.
"""

import abc


class Task(abc.ABC):
    """What the Trainer drives.

    tokens_per_step: int
        Tokens in one micro-batch (the throughput the trainer logs is this
        times grad_accum per step); set in __init__.

    train_step(it, micro, scale) -> float
        Forward and backward of micro-batch `micro` of step `it`, adding the
        gradient of `scale * loss` into the model's parameters (the trainer
        passes 1 / grad_accum). Returns the unscaled loss. The batch must be a
        function of (it, micro) and the task's seed, or of state_dict(), never
        of a running generator: that is what makes resume exact.

    evaluate() -> dict
        Metrics of the model as it is now, {name: value}; the trainer logs
        them, keeps the best by its metric_for_best and puts the model back in
        training mode afterwards.

    state_dict() -> {name: array} and load_state_dict(tensors)
        Whatever the task carries from one step to the next (the LSTM's
        recurrent state), saved with every checkpoint and given back on
        resume. A task without such state keeps these defaults: it saves {}
        and is given {} back.
    """

    tokens_per_step = None

    @abc.abstractmethod
    def train_step(self, it, micro, scale):
        """Forward and backward of one micro-batch; returns its unscaled loss."""

    @abc.abstractmethod
    def evaluate(self):
        """{metric name: value} of the model now."""

    def state_dict(self):
        """The state carried between steps: none by default."""
        return {}

    def load_state_dict(self, tensors):
        """Restore state_dict()'s tensors; a task without state is given {} back."""
        if tensors:
            raise ValueError(f"{type(self).__name__} carries no state, but got {sorted(tensors)}")


class PretrainingTask(Task):
    """A language-modelling task: pretraining (cli/pretrain.py) ends by scoring the model on held-out text.

    full_val_scope: str
        What full_val_loss() is computed over, for the report ("the first 1M
        held-out tokens").

    full_val_loss(max_tokens, progress=False) -> float
        The run's final score, in nats per predicted token, over at most
        max_tokens held-out tokens (train.py's --full-val-tokens); progress:
        a bar over its batches.
    """

    full_val_scope = None

    @abc.abstractmethod
    def full_val_loss(self, max_tokens, progress=False):
        """Mean loss per predicted token over full_val_scope."""


class EpochTask(Task):
    """A task that walks a finite training set: fine-tuning (cli/finetune.py) counts its run in epochs.

    steps_per_epoch: int
        Batches in one pass over the training set (fine-tuning runs one batch
        a step, grad_accum 1); set in __init__.
    """

    steps_per_epoch = None
