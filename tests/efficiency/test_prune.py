"""Pruning: a head-pruned BERT computes what the original computes with those heads zeroed, head importance
is the gate's gradient, magnitude pruning leaves exactly the fraction asked for."""

import copy

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, to_float, to_host, xp
from minillm.efficiency.prune import (head_importance, hold_zeros, least_important_heads, magnitude_prune,
                                      prunable_weights, prune_heads)
from minillm.models.auto import load_model
from minillm.models.bert import BertConfig
from minillm.models.heads import BertForSequenceClassification
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.training.optim import AdamW

IDS = xp.asarray([[1, 4, 6, 2, 0], [1, 9, 3, 8, 2]])
MASK = xp.asarray([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
LABELS = xp.asarray([0, 1])


def tiny(seed=0):
    cfg = BertConfig(vocab_size=12, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=16,
                     max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(cfg, ["neg", "pos"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for p in model.parameters():
        p.data = p.data + rng.standard_normal(p.shape) * 0.3
    return model.eval()


def zero_head(model, layer, head):
    """The original model with one head's output zeroed: its value rows (and bias) set to 0."""
    value = model.bert.encoder.layer[layer].attention.self.value
    value.weight.data[head * 4:(head + 1) * 4] = 0
    value.bias.data[head * 4:(head + 1) * 4] = 0


def test_a_pruned_model_equals_the_original_with_those_heads_zeroed(tmp_path):
    model = tiny()
    zeroed = copy.deepcopy(model)
    for layer, head in ((0, 1), (1, 0), (1, 2)):
        zero_head(zeroed, layer, head)
    pruned = prune_heads(model, {0: [1], 1: [0, 2]})
    assert pruned.config.pruned_heads == {"0": [1], "1": [0, 2]}
    assert pruned.bert.encoder.layer[1].attention.self.query.weight.shape == (4, 12)
    assert pruned.bert.encoder.layer[1].attention.output.dense.weight.shape == (12, 4)
    expected = to_host(zeroed(IDS, MASK))
    assert np.abs(to_host(pruned(IDS, MASK)) - expected).max() < 1e-12
    pruned.save_pretrained(str(tmp_path / "p"))
    loaded = load_model(str(tmp_path / "p"))
    assert loaded.config.pruned_heads == {"0": [1], "1": [0, 2]}
    assert np.abs(to_host(loaded.astype("float64")(IDS, MASK)) - expected).max() < 1e-5  # stored as float32
    again = prune_heads(pruned, {0: [1]})  # head 2 of layer 0 is now its second: original numbers are recorded
    assert again.config.pruned_heads["0"] == [1, 2]
    with pytest.raises(ValueError, match="one must stay"):
        prune_heads(again, {0: [0]})


def loss_and_backward(model, batch):
    logits = model(*batch[:2])
    loss, cache = cross_entropy_forward(logits, batch[2])
    model.backward(cross_entropy_backward(1.0, cache))
    return to_float(loss)


def test_head_importance_is_the_gradient_of_a_gate():
    model = tiny(1)
    scores = head_importance(model, [(IDS, MASK, LABELS)], loss_and_backward, normalize=False)
    eps = 1e-6
    for layer in range(2):
        for head in range(3):
            value = model.bert.encoder.layer[layer].attention.self.value
            rows = slice(head * 4, (head + 1) * 4)
            w, b = value.weight.data.copy(), value.bias.data.copy()
            losses = []
            for gate in (1 + eps, 1 - eps):  # scaling v_h by the gate scales the head's output by it
                value.weight.data[rows], value.bias.data[rows] = w[rows] * gate, b[rows] * gate
                losses.append(to_float(cross_entropy_forward(model(IDS, MASK), LABELS)[0]))
            value.weight.data, value.bias.data = w, b
            assert scores[layer, head] == pytest.approx(abs(losses[0] - losses[1]) / (2 * eps), rel=1e-5, abs=1e-9)
    assert model.bert.encoder.layer[0].attention.self.__class__.__name__ == "BertSelfAttention"  # unwrapped
    normalized = head_importance(model, [(IDS, MASK, LABELS)], loss_and_backward)
    assert np.linalg.norm(normalized, axis=1) == pytest.approx([1.0, 1.0])


def test_least_important_heads_keep_one_per_layer():
    scores = np.array([[0.1, 0.2, 0.3], [0.9, 0.05, np.nan]])
    assert least_important_heads(scores, 2) == {0: [0], 1: [1]}
    assert least_important_heads(scores, 4) == {0: [0, 1], 1: [1]}  # layer 1 keeps its last head


@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0), st.sampled_from(["global", "layer"]))
def test_magnitude_pruning_leaves_exactly_the_fraction(seed, sparsity, scope):
    model = tiny(seed % 100)
    before = {n: to_host(p.data).copy() for n, p in prunable_weights(model)}
    fractions = magnitude_prune(model, sparsity, scope)
    total = sum(a.size for a in before.values())
    zeros = sum(round(f * before[n].size) for n, f in fractions.items())
    if scope == "global":
        assert zeros == round(sparsity * total)
        kept = np.concatenate([np.abs(to_host(p.data)).ravel() for _, p in prunable_weights(model)])
        dropped = np.concatenate([np.abs(before[n]).ravel()[to_host(p.data).ravel() == 0]
                                  for n, p in prunable_weights(model)])
        assert dropped.size == 0 or kept[kept > 0].size == 0 or dropped.max() <= kept[kept > 0].min()
    else:
        for n, f in fractions.items():
            assert round(f * before[n].size) == round(sparsity * before[n].size)
    for n, p in prunable_weights(model):  # the survivors are untouched
        survivors = to_host(p.data) != 0
        assert (to_host(p.data)[survivors] == before[n][survivors]).all()


def test_held_zeros_stay_zero_while_the_rest_trains():
    model = tiny(1).train()
    magnitude_prune(model, 0.5, "layer")
    zero = {n: to_host(p.data) == 0 for n, p in prunable_weights(model)}
    assert hold_zeros(model) == sum(int(z.sum()) for z in zero.values())
    before = {n: to_host(p.data).copy() for n, p in model.named_parameters()}
    optimizer = AdamW(model, lr=1e-2, weight_decay=0.1, threads=2)
    for _ in range(3):
        for p in model.parameters():
            p.grad = None
        loss, cache = cross_entropy_forward(model(IDS, MASK), LABELS)
        model.backward(cross_entropy_backward(1.0, cache))
        optimizer.step()
    for n, p in prunable_weights(model):
        w = to_host(p.data)
        assert (w[zero[n]] == 0).all() and (w[~zero[n]] != before[n][~zero[n]]).all()
    assert float(np.abs(to_host(model.classifier.bias.data) - before["classifier.bias"]).max()) > 0
