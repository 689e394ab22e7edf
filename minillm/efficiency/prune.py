"""Pruning: whole attention heads by importance (Michel et al., 2019), single weights by magnitude.

Head importance. Put a gate xi_h = 1 on each head's output (its context vectors, before the
heads are merged and projected); the importance of head h is how much the loss moves with its gate,

    I_h = | sum over batches of dL/dxi_h |,   dL/dxi_h = sum_{b, t, d} context_h[b, t, d] dL/dcontext_h[b, t, d]

so no gate needs to exist: HeadGate wraps a layer's `attention.self` and reads both factors during
an ordinary forward and backward. Michel et al. normalise each layer's scores by their L2 norm
before ranking heads across layers; the least important heads are removed, at least one kept per
layer. Removing head h deletes its rows of the query, key and value weights (and biases) and its
columns of attention.output.dense: the pruned model is a smaller BERT of the same architecture whose
config.json lists the removed heads in `pruned_heads` (Hugging Face's key), and computes exactly what
the original computes with those heads' outputs zeroed.

Magnitude pruning sets the smallest |w| of the Linear / Conv1D weights to zero: the k = round(s n)
smallest over all of them (global) or in each matrix (per layer). The zeros are stored as zeros:
the saving needs a sparse format or quantization, the point here is how much accuracy survives.
Fine-tuning afterwards (`finetune.py --init PRUNED --hold-zeros`) holds every zero at zero: each
weight's gradient is multiplied by its mask (w != 0), so the sparsity the pruning chose is kept.
"""

import dataclasses

from minillm.backend import np, to_host, xp
from minillm.efficiency.distill import backbone
from minillm.nn.layers import Conv1D, Linear, Module


class HeadGate(Module):
    """Wraps a BertSelfAttention; accumulates dL/dxi_h for each head over the backward passes it sees."""

    def __init__(self, inner):
        self.inner, self.n_head = inner, inner.n_head
        self.grad = xp.zeros(inner.n_head)  # (H,)

    def forward(self, h, mask, past=None, bias=None):
        self.context = self.inner(h, mask, past, bias)  # (B, T, H D)
        return self.context

    def backward(self, dcontext, input_grad=True):
        B, T, _ = self.context.shape
        per_head = (self.context * dcontext).reshape(B, T, self.n_head, -1)  # (B, T, H, D)
        self.grad += per_head.sum(axis=(0, 1, 3))
        return self.inner.backward(dcontext, input_grad=input_grad)


def head_importance(model, batches, loss_and_backward, normalize=True):
    """(layers, heads) host array of I_h over `batches`; loss_and_backward(model, batch) runs one forward
    and backward. Layers with pruned heads have their remaining heads' scores, the rest NaN."""
    body = backbone(model)
    layers = list(body.encoder.layer)
    gates = [HeadGate(layer.attention.self) for layer in layers]
    for layer, gate in zip(layers, gates):
        layer.attention.self = gate
    try:
        model.eval()  # no dropout: the scores of the model as it predicts
        for batch in batches:
            loss_and_backward(model, batch)
    finally:
        for layer, gate in zip(layers, gates):
            layer.attention.self = gate.inner
        model.zero_grad()
    scores = np.full((len(layers), body.config.num_attention_heads), np.nan)
    for i, gate in enumerate(gates):
        s = np.abs(to_host(gate.grad))
        scores[i, :len(s)] = s / (np.linalg.norm(s) + 1e-20) if normalize else s
    return scores


def least_important_heads(scores, n):
    """{layer: [heads]} of the n lowest scores (NaN: already gone), never every head of a layer."""
    order = [(scores[i, h], i, h) for i in range(scores.shape[0]) for h in range(scores.shape[1])
             if not np.isnan(scores[i, h])]
    left = {i: int((~np.isnan(scores[i])).sum()) for i in range(scores.shape[0])}
    chosen, count = {}, 0
    for _, i, h in sorted(order):
        if count == n:
            break
        if left[i] > 1:
            chosen.setdefault(i, []).append(h)
            left[i] -= 1
            count += 1
    return {i: sorted(heads) for i, heads in chosen.items()}


def _keep_rows(linear, rows):
    linear.weight.data = linear.weight.data[rows].copy()  # (out, in): rows are outputs
    linear.bias.data = linear.bias.data[rows].copy()


def prune_heads(model, heads):
    """Remove heads {layer: [indices among the heads the layer has now]} in place; records them, by their
    original numbers, in config.pruned_heads. Returns the model."""
    body = backbone(model)
    cfg = body.config
    size = cfg.hidden_size // cfg.num_attention_heads
    pruned = dict(cfg.pruned_heads)
    for i, remove in heads.items():
        attention = body.encoder.layer[i].attention
        n = attention.self.n_head
        if not remove or not set(remove) < set(range(n)):
            raise ValueError(f"layer {i} has heads 0..{n - 1}; cannot remove {sorted(remove)} (one must stay)")
        original = [h for h in range(cfg.num_attention_heads) if h not in pruned.get(str(i), [])]
        keep = [h for h in range(n) if h not in remove]
        channels = np.concatenate([np.arange(h * size, (h + 1) * size) for h in keep])
        for proj in (attention.self.query, attention.self.key, attention.self.value):
            _keep_rows(proj, channels)
        dense = attention.output.dense
        dense.weight.data = dense.weight.data[:, channels].copy()  # (out, in): the heads are inputs here
        attention.self.n_head = len(keep)
        pruned[str(i)] = sorted(pruned.get(str(i), []) + [original[h] for h in remove])
    new = dataclasses.replace(cfg, pruned_heads=pruned)
    body.config = new
    if model is not body:
        model.config = new
    return model


def prunable_weights(model):
    """(name, Parameter) of every Linear and Conv1D weight: what magnitude pruning prunes."""
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules() if isinstance(m, (Linear, Conv1D))]


def hold_zeros(model):
    """Give every Linear/Conv1D weight with zero entries the mask (w != 0), so training leaves those
    entries at zero (nn/layers.Parameter); returns the number of entries held."""
    held = 0
    for _, p in prunable_weights(model):
        keep = p.data != 0
        n = int(to_host(keep.size - keep.sum()))
        if n:
            p.mask, held = keep.astype(p.data.dtype), held + n
    return held


def magnitude_prune(model, sparsity, scope="global"):
    """Zero the fraction `sparsity` of the smallest-magnitude Linear/Conv1D weights, in place.

    scope "global": the k = round(sparsity * n) smallest of all n such weights, wherever they are;
    "layer": round(sparsity * n_i) of each matrix's n_i. Ties are broken by position, so exactly k go.
    Returns {name: fraction of that matrix now zero}.
    """
    if not 0 <= sparsity <= 1 or scope not in ("global", "layer"):
        raise ValueError(f"sparsity in [0, 1] and scope global or layer, got {sparsity}, {scope!r}")
    weights = prunable_weights(model)
    if scope == "global":
        flat = xp.concatenate([xp.abs(p.data).ravel() for _, p in weights])
        k = int(round(sparsity * flat.size))
        drop = xp.zeros(flat.size, dtype=bool)
        drop[xp.argsort(flat, kind="stable")[:k]] = True
        start = 0
        for _, p in weights:
            p.data = xp.where(drop[start:start + p.data.size].reshape(p.shape), 0, p.data).astype(p.data.dtype)
            start += p.data.size
    else:
        for _, p in weights:
            k = int(round(sparsity * p.data.size))
            order = xp.argsort(xp.abs(p.data).ravel(), kind="stable")[:k]
            flat = p.data.ravel().copy()
            flat[order] = 0
            p.data = flat.reshape(p.shape)
    return {name: float(to_host((p.data == 0).mean())) for name, p in weights}
