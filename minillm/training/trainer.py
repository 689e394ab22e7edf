"""The training loop shared by train.py and finetune.py.

A task knows its data and objective; what it provides is the Task protocol
(task.py). The trainer owns everything else: the schedule, gradient
accumulation and clipping, AdamW, NaN guards, JSON-lines metrics, atomic
checkpoints and exact resume.

Exact resume needs no saved random state: the task draws the batch of step
`it` from a generator seeded by (seed, it), and the model's dropout is
reseeded the same way (Module.reseed_dropout), so a resumed run repeats an
uninterrupted one bit for bit on the CPU. State a task carries between steps
is saved with the checkpoint.
"""

import contextlib
import dataclasses
import json
import math
import os
import time

from tqdm import tqdm

from minillm.backend import synchronize
from minillm.checkpoint import load_safetensors, read_json, recover_directory, save_safetensors, write_json
from minillm.nn.functional import set_matmul_precision
from minillm.training.buckets import DEFAULT_BUCKET_MB
from minillm.training.loss_scale import DynamicLossScale
from minillm.training.optim import AdamW, cosine_lr, linear_lr
from minillm.training.ranks import OneProcess


@dataclasses.dataclass
class TrainConfig:
    max_iters: int = 2000
    eval_interval: int = 250
    log_interval: int = 10
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    seed: int = 1337
    schedule: str = "cosine"  # or "linear": warmup, then straight down to min_lr (BERT's fine-tuning)
    metric_for_best: str = "val_loss"  # the evaluation metric that picks run_dir/best
    greater_is_better: bool = False
    early_stopping_patience: int = 0  # stop after this many evaluations without a new best (0: never)
    max_seconds: float = 0.0  # a training-time budget: evaluate, save and stop once it is spent (0: none)
    precision: str = "float32"  # or "float16": matrix products in float16, float32 master weights, loss scaling
    loss_scale: float = 2.0 ** 16  # float16's initial loss scale (then dynamic: loss_scale.py)
    loss_scale_growth_interval: int = 1000  # good steps before the loss scale doubles
    shard_optimizer: bool = False  # data parallelism: each rank keeps AdamW's state for its slice (ZeRO-1)
    bucket_mb: float = DEFAULT_BUCKET_MB  # data parallelism: gradients summed in buckets of this size during
    #                                       backward (training/buckets.py; 0: one Allreduce after backward)


class NonFiniteLoss(RuntimeError):
    pass


TRAINER_STATE_KEYS = ("iter", "best", "evals_since_best", "optimizer_step", "train_config", "run_config")


def read_trainer_state(directory):
    """A checkpoint's trainer_state.json; a missing key is a ValueError naming the file and the key."""
    path = os.path.join(directory, "trainer_state.json")
    state = read_json(path)
    missing = [key for key in TRAINER_STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"{path}: missing key {', '.join(map(repr, missing))}")
    return state


def resume_directory(run_dir):
    """The checkpoint directory a run in run_dir resumes from, after recovering from a crash mid-save
    (checkpoint.recover_directory); a FileNotFoundError if the run has none."""
    directory = recover_directory(os.path.join(run_dir, "checkpoint"))
    if directory is None:
        raise FileNotFoundError(f"{os.path.join(run_dir, 'checkpoint')}: no checkpoint to resume from")
    return directory


class Trainer:
    """Runs a Task's steps (task.py) under AdamW with warmup + cosine decay; checkpoints to run_dir/checkpoint."""

    def __init__(self, model, task, cfg, run_dir, extra_files=None, run_config=None, progress=True, threads=1,
                 ranks=None):
        self.model, self.task, self.cfg, self.run_dir = model, task, cfg, run_dir
        self.extra_files = extra_files  # writes the tokenizer etc. into each checkpoint
        self.run_config = run_config or {}  # everything needed to rebuild the run, saved with it
        # data parallelism: rank r runs micro-batches r, r + size, ... of every step; the writer writes
        self.ranks = ranks or OneProcess()
        if cfg.grad_accum % self.ranks.size:
            raise ValueError(f"grad_accum {cfg.grad_accum} must be a multiple of the {self.ranks.size} ranks: each "
                             "rank takes an equal share of every step's micro-batches (--grad-accum)")
        self.optimizer = AdamW(model, cfg.learning_rate, (cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                               threads=threads,  # the update is split over threads too
                               ranks=self.ranks, shard=cfg.shard_optimizer, bucket_mb=cfg.bucket_mb)
        self.iter = 0
        self.best = None  # the best value of cfg.metric_for_best so far
        self.evals_since_best = 0
        self.progress = progress and self.ranks.is_writer
        self.history = []  # every metrics record of this process, also written to metrics.jsonl
        self.train_seconds = 0.0  # time spent in training steps (not evaluation), over resumes too
        self.loss_scale = (DynamicLossScale(cfg.loss_scale, cfg.loss_scale_growth_interval)
                           if cfg.precision == "float16" else None)
        set_matmul_precision(cfg.precision)  # the model's products from here on
        os.makedirs(run_dir, exist_ok=True)

    @property
    def checkpoint_dir(self):
        return os.path.join(self.run_dir, "checkpoint")

    # ------------------------------------------------------------ checkpoints
    def save_model(self, directory, extra_files):
        """The model into `directory`, written by the writer. Called on every rank: a model split across the
        ranks (tensor parallelism) first gathers its parts, so the directory holds the ordinary whole model."""
        state = self.ranks.whole_state(self.model.checkpoint_state())
        if self.ranks.is_writer:
            self.model.save_pretrained(directory, extra_files=extra_files, state=state)

    def save(self):
        # on every rank: a sharded optimizer gathers its moments, a split model its moments' parts
        optimizer_state = self.ranks.whole_state(self.optimizer.state_dict())

        def extras(tmp):
            save_safetensors(os.path.join(tmp, "optimizer.safetensors"), optimizer_state)
            save_safetensors(os.path.join(tmp, "task_state.safetensors"), self.task.state_dict())
            write_json(os.path.join(tmp, "trainer_state.json"), {
                "iter": self.iter, "best": self.best, "evals_since_best": self.evals_since_best,
                "optimizer_step": self.optimizer.t, "metrics_bytes": self.metrics_bytes(),
                "train_seconds": self.train_seconds,
                "loss_scale": self.loss_scale.state_dict() if self.loss_scale else None,
                "train_config": dataclasses.asdict(self.cfg), "run_config": self.run_config})
            if self.extra_files:
                self.extra_files(tmp)

        self.save_model(self.checkpoint_dir, extras)

    def resume(self):
        """Load model, optimizer and counters from run_dir/checkpoint (see resume_directory), and cut
        metrics.jsonl back to what it held when the checkpoint was saved."""
        directory = resume_directory(self.run_dir)
        state = read_trainer_state(directory)

        def tensors(name):  # (a model split across the ranks takes its part of each whole tensor)
            return self.ranks.own_state(load_safetensors(os.path.join(directory, name)))

        self.model.load_pretrained_state(tensors("model.safetensors"))
        self.optimizer.load_state_dict(tensors("optimizer.safetensors"), state["optimizer_step"])
        task_state = os.path.join(directory, "task_state.safetensors")
        # checkpoints written before every task had a state_dict() hold the file only for tasks with state
        self.task.load_state_dict(load_safetensors(task_state) if os.path.exists(task_state) else {})
        self.iter, self.best, self.evals_since_best = state["iter"], state["best"], state["evals_since_best"]
        if "metrics_bytes" in state and self.ranks.is_writer:  # (older checkpoints leave the file as it is)
            self.cut_metrics(state["metrics_bytes"])
        self.train_seconds = state.get("train_seconds", 0.0)  # checkpoints before it was saved: counted again
        if self.loss_scale and state.get("loss_scale"):  # a float32 run resumed in float16 starts a fresh scale
            self.loss_scale.load_state_dict(state["loss_scale"])
        return state

    # ------------------------------------------------------------ metrics
    @property
    def metrics_path(self):
        return os.path.join(self.run_dir, "metrics.jsonl")

    def log(self, record):
        self.history.append(record)
        if not self.ranks.is_writer:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def metrics_bytes(self):
        return os.path.getsize(self.metrics_path) if os.path.exists(self.metrics_path) else 0

    def cut_metrics(self, size):
        """Keep the first `size` bytes of metrics.jsonl, atomically: the records a killed run logged
        after its last checkpoint are logged again by the resumed run, and must not stand twice."""
        if self.metrics_bytes() <= size:
            return
        with open(self.metrics_path, "rb") as f:
            kept = f.read(size)
        with open(self.metrics_path + ".tmp", "wb") as f:
            f.write(kept)
        os.replace(self.metrics_path + ".tmp", self.metrics_path)

    def evaluate(self):
        """Task metrics, logged; a new best (cfg.metric_for_best) is also saved to run_dir/best."""
        metrics = self.task.evaluate()
        self.model.train()
        record = {"iter": self.iter, "train_seconds": round(self.train_seconds, 1), **metrics}
        self.log(record)
        value = metrics.get(self.cfg.metric_for_best)
        if value is None:
            raise KeyError(f"metric_for_best {self.cfg.metric_for_best!r} is not among {sorted(metrics)}")
        better = self.best is None or (value > self.best if self.cfg.greater_is_better else value < self.best)
        if better:
            self.best, self.evals_since_best = value, 0
            self.save_model(os.path.join(self.run_dir, "best"), self.extra_files)
        else:
            self.evals_since_best += 1
        return record

    def should_stop_early(self):
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.evals_since_best >= patience

    # ------------------------------------------------------------ the loop
    def fit(self, resumed=False):
        """Train from self.iter to max_iters; evaluate and checkpoint every eval_interval and at the end.

        A resumed run does not repeat the evaluation its checkpoint was saved after.
        """
        cfg = self.cfg
        start = self.iter
        self.model.train()
        bar = tqdm(range(self.iter, cfg.max_iters + 1), initial=self.iter, total=cfg.max_iters + 1,
                   disable=not self.progress, desc="train", dynamic_ncols=True)
        tokens, t0, waited = 0, time.perf_counter(), self.sums_waited()
        for it in bar:
            self.iter = it
            over_budget = 0 < cfg.max_seconds <= self.train_seconds
            is_eval = it % cfg.eval_interval == 0 or it == cfg.max_iters or over_budget
            if is_eval and not (resumed and it == start):
                record = self.evaluate()
                bar.write(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in record.items() if not isinstance(v, (list, dict))))
                self.save()
                if it < cfg.max_iters and self.should_stop_early():
                    bar.write(f"early stop: no better {cfg.metric_for_best} in {self.evals_since_best} evaluations")
                    break
            if over_budget and it < cfg.max_iters:
                bar.write(f"stopped at iter {it} of {cfg.max_iters}: the --max-seconds budget of "
                          f"{cfg.max_seconds:g} s of training is spent")
            if it == cfg.max_iters or over_budget:
                break
            schedule = {"cosine": cosine_lr, "linear": linear_lr}[cfg.schedule]
            lr = schedule(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)
            step_start = time.perf_counter()
            loss = self.step(it, lr)
            synchronize()
            self.train_seconds += time.perf_counter() - step_start
            tokens += self.task.tokens_per_step * cfg.grad_accum
            if (it + 1) % cfg.log_interval == 0:
                synchronize()
                dt = time.perf_counter() - t0
                record = {"iter": it, "loss": loss, "lr": lr, "grad_norm": self.last_grad_norm,
                          "tokens_per_s": tokens / dt, "ms_per_step": 1000 * dt / cfg.log_interval,
                          **({"loss_scale": self.loss_scale.scale} if self.loss_scale else {})}
                if self.optimizer.buckets:  # what the steps waited for the gradients' sums after backward
                    record["sum_wait_ms"] = 1000 * (self.sums_waited() - waited) / cfg.log_interval
                self.log(record)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                tokens, t0, waited = 0, time.perf_counter(), self.sums_waited()
        bar.close()
        return self.history

    def sums_waited(self):
        """Seconds the steps have waited after backward for the gradients' sums over the ranks, so far."""
        return self.optimizer.buckets.wait_seconds if self.optimizer.buckets else 0.0

    def step(self, it, lr):
        """One optimizer step: grad_accum micro-batches, NaN guard, clipping, AdamW; in float16, the loss
        scaled up for backward and a step whose gradients overflow skipped (logged) with the scale halved."""
        cfg = self.cfg
        scale = self.loss_scale.scale if self.loss_scale else 1.0
        total = 0.0
        for micro in range(self.ranks.rank, cfg.grad_accum, self.ranks.size):
            # dropout's masks are a function of (step, micro-batch), whichever rank runs it
            self.model.reseed_dropout(cfg.seed * 1_000_003 + it + micro * 1_000_000_007)
            last = micro + self.ranks.size >= cfg.grad_accum  # its backward completes this rank's gradients
            with self.optimizer.overlapped() if last else contextlib.nullcontext():
                loss = self.task.train_step(it, micro, scale / cfg.grad_accum)
            if not math.isfinite(loss):
                self.optimizer.zero_grad()
                raise NonFiniteLoss(
                    f"loss is {loss} at iter {it} (micro-batch {micro}); stopped without saving. "
                    f"The last good checkpoint is {self.checkpoint_dir} (resume with --resume).")
            total += loss / cfg.grad_accum
        total = self.ranks.sum(total)
        self.last_grad_norm = self.optimizer.step(lr, max_grad_norm=cfg.grad_clip, grad_scale=scale)
        skipped = self.loss_scale and not self.loss_scale.update(math.isfinite(self.last_grad_norm))
        if skipped and self.loss_scale.scale >= 1.0:
            self.optimizer.zero_grad()  # nothing was updated
            self.last_grad_norm = None
            self.log({"iter": it, "skipped_step": "float16 gradients overflowed", "loss_scale": self.loss_scale.scale})
            tqdm.write(f"iter {it}: float16 gradients overflowed at loss scale {scale:g}; step skipped, "
                       f"scale now {self.loss_scale.scale:g}")
            return total
        if not math.isfinite(self.last_grad_norm):  # nothing was updated
            self.optimizer.zero_grad()
            raise NonFiniteLoss(f"gradient norm is {self.last_grad_norm} at iter {it}; stopped without saving. "
                                f"The last good checkpoint is {self.checkpoint_dir}.")
        self.optimizer.zero_grad()
        return total

    def run(self, resume=False):
        """fit(), first loading the checkpoint when resuming."""
        if resume:
            self.resume()
        return self.fit(resumed=resume)
