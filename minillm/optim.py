"""Optimisation: AdamW, the learning-rate schedule, gradient clipping.

Gradient accumulation needs no code here: every backward adds into `.grad`,
so k micro-batches whose losses are scaled by 1/k leave the gradient of
their mean, and the optimizer steps once.
"""

import math

from minillm.backend import xp
from minillm.nn.layers import Embedding, LayerNorm, Parameter


def weight_decay_groups(model):
    """(decayed, not decayed) parameter names.

    Matrices that multiply activations decay; biases, LayerNorm gains and
    embedding tables do not (shrinking them toward 0 only hurts).
    """
    exempt = set()
    for name, module in model.named_modules():
        if isinstance(module, (Embedding, LayerNorm)):
            exempt.update(id(p) for p in vars(module).values() if isinstance(p, Parameter))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if id(p) in exempt or p.data.ndim < 2 else decay).append(name)
    return decay, no_decay


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:

        p <- p - lr * wd * p                          (decay, decayed parameters only)
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.named = dict(model.named_parameters())
        decay, _ = weight_decay_groups(model)
        self.decayed = set(decay)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = {n: xp.zeros_like(p.data) for n, p in self.named.items()}
        self.v = {n: xp.zeros_like(p.data) for n, p in self.named.items()}
        self.buffers = {}

    def step(self, lr=None):
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        step_size = lr / (1 - b1 ** self.t)
        bias2 = 1 - b2 ** self.t
        for name, p in self.named.items():
            if p.grad is None:
                continue
            g, m, v = p.grad, self.m[name], self.v[name]
            tmp = self.scratch(g)  # every step below writes in place: no 22M-float temporaries per step
            if self.weight_decay and name in self.decayed:
                p.data *= 1 - lr * self.weight_decay
            m *= b1
            m += xp.multiply(g, 1 - b1, out=tmp)
            v *= b2
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            xp.divide(v, bias2, out=tmp)  # denominator: sqrt(v / (1 - b2^t)) + eps
            xp.sqrt(tmp, out=tmp)
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            p.data -= tmp

    def scratch(self, like):
        """A reusable work array shaped and typed like `like` (a view into one buffer per dtype)."""
        buffer = self.buffers.get(like.dtype)
        if buffer is None:
            size = max(p.data.size for p in self.named.values())
            buffer = self.buffers[like.dtype] = xp.empty(size, dtype=like.dtype)
        return buffer[:like.size].reshape(like.shape)

    def zero_grad(self):
        for p in self.named.values():
            p.grad = None

    def state_dict(self):
        """Moments under `exp_avg.<name>` / `exp_avg_sq.<name>`, as PyTorch names them."""
        out = {f"exp_avg.{n}": m for n, m in self.m.items()}
        out.update({f"exp_avg_sq.{n}": v for n, v in self.v.items()})
        return out

    def load_state_dict(self, state, t):
        expected = set(self.state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"optimizer state does not fit the model: missing {missing}, unexpected {extra}")
        for n in self.m:
            self.m[n] = xp.asarray(state[f"exp_avg.{n}"], dtype=self.m[n].dtype).copy()
            self.v[n] = xp.asarray(state[f"exp_avg_sq.{n}"], dtype=self.v[n].dtype).copy()
        self.t = t


def cosine_lr(it, max_lr, min_lr, warmup_iters, decay_iters):
    """Linear warmup to max_lr over warmup_iters, cosine decay to min_lr at decay_iters, then flat.

        lr(t) = max_lr (t + 1) / (warmup + 1)                        t < warmup
        lr(t) = min_lr + (max_lr - min_lr) (1 + cos(pi r)) / 2,      r = (t - warmup) / (decay - warmup)
    """
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(decay_iters - warmup_iters, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def linear_lr(it, max_lr, min_lr, warmup_iters, decay_iters):
    """Linear warmup to max_lr, then a straight line down to min_lr at decay_iters (BERT's schedule)."""
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    return max_lr - (max_lr - min_lr) * (it - warmup_iters) / max(decay_iters - warmup_iters, 1)


def clip_grad_norm(parameters, max_norm):
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm before."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if max_norm and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            g *= scale
    return norm
