"""SetFit: balanced pairs, the pair loss's gradient through mean pooling into the encoder, the head."""

import collections

import pytest

from minillm.backend import np, xp
from minillm.models.bert import BertConfig, BertModel
from minillm.nn.gradcheck import assert_gradients_close, numerical_gradient, relative_error
from minillm.nn.layers import RandomSource
from minillm.tasks.setfit import logistic_head, pair_step, sample_pairs


def test_pairs_are_balanced_and_labelled_by_label_equality():
    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    left, right, target = sample_pairs(labels, 6, seed=0)
    assert len(left) == 8 * 6 and collections.Counter(left.tolist()) == {i: 6 for i in range(8)}
    same = np.array(labels)[left] == np.array(labels)[right]
    assert np.array_equal(target, same.astype(float)) and target.sum() == 8 * 3  # half of each example's
    assert not np.any((left == right) & same)  # never paired with itself
    assert len(sample_pairs(labels, 6, seed=0, max_pairs=10)[0]) == 10
    assert np.array_equal(sample_pairs(labels, 6, seed=0)[1], right)
    with pytest.raises(ValueError, match="two or more examples"):
        sample_pairs([0, 0, 1], 4, seed=0)


def test_pair_step_gradient_through_the_pooling_and_the_encoder():
    cfg = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                     max_position_embeddings=8)
    model = BertModel(cfg, xp.random.default_rng(0), RandomSource(0), "float64").eval()
    rng = np.random.default_rng(0)
    ids = xp.asarray(rng.integers(1, 20, (4, 5)))  # 2 pairs: rows 0, 1 left, rows 2, 3 their partners
    mask = xp.asarray([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    target = np.array([1.0, 0.0])
    named = dict(model.named_parameters())
    checked = ["encoder.layer.0.output.LayerNorm.bias", "encoder.layer.0.attention.self.query.bias"]
    pair_step(model, ids, mask, target)
    analytic = {n: named[n].grad.copy() for n in checked}

    def loss():
        return pair_step(model, ids, mask, target)

    errors = {n: relative_error(analytic[n], *numerical_gradient(loss, named[n].data)) for n in checked}
    assert_gradients_close(errors, checked)


def test_the_head_separates_what_a_line_separates():
    x = np.array([[1.0, 0.1], [0.9, -0.2], [-1.0, 0.3], [-0.8, -0.1]])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert logistic_head(x, [1, 1, 0, 0], np.array([[0.7, 0.7], [-0.7, 0.7]]), 2, seed=0) == [1, 0]
