"""Episodic training of a tiny BERT: the step's gradient against finite differences of the episode loss, the
top-layers-only option, the test classifiers by hand and the confidence interval."""

import pytest

from minillm.backend import np, to_float, xp
from minillm.data.episodes import EpisodeSampler
from minillm.models.bert import BertConfig, BertModel
from minillm.nn.functional import masked_mean_forward
from minillm.nn.gradcheck import numerical_gradient, relative_error
from minillm.nn.layers import RandomSource
from minillm.nn.loss import cross_entropy_forward
from minillm.tasks.batching import pad_batch
from minillm.tasks.meta_learning import (EpisodeScorer, MetaLearningTask, classify_episode, episode_accuracies,
                                         mean_ci95)


def _tiny_bert(dtype="float64"):
    cfg = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                     max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(cfg, xp.random.default_rng(0), RandomSource(0), dtype)


def _data(n_classes=3, per_class=4):
    rng = np.random.default_rng(0)
    encoded = [[1] + rng.integers(3, 20, rng.integers(2, 6)).tolist() + [2] for _ in range(n_classes * per_class)]
    return encoded, np.repeat(np.arange(n_classes), per_class).tolist(), [list(range(n_classes))]


@pytest.mark.parametrize("method,train_layers", [("protonet", 0), ("proto-maml", 1)])
def test_a_step_adds_the_gradient_of_the_episode_loss(method, train_layers):
    model, data = _tiny_bert(), _data()
    scorer = EpisodeScorer(method, inner_steps=0)  # (with inner steps proto-maml's gradient is first-order)
    task = MetaLearningTask(model, scorer, data, data, 2, 2, 1, pad_id=0, seed=3, eval_episodes=4,
                            train_layers=train_layers)
    loss = task.train_step(0, 0, 1.0)
    _, support, query = task.sampler.episode(0)
    rows = np.concatenate([support.ravel(), query.ravel()])
    ids, mask = pad_batch([data[0][r] for r in rows], 0)

    def episode_loss():
        e, _ = masked_mean_forward(model(ids, attention_mask=mask)[0], mask)
        z = scorer.forward(e[:4].reshape(2, 2, -1), e[4:])
        return to_float(cross_entropy_forward(z, xp.asarray([0, 1]))[0])

    assert abs(episode_loss() - loss) < 1e-12
    params = dict(model.named_parameters())
    top = params["encoder.layer.1.attention.self.query.weight"]
    assert relative_error(top.grad, *numerical_gradient(episode_loss, top.data)) < 1e-6
    bottom = params["encoder.layer.0.output.dense.weight"]
    if train_layers == 1:  # frozen below the top layer: no gradient, and AdamW would not move it
        assert bottom.grad is None and not bottom.requires_grad
    else:
        assert relative_error(bottom.grad, *numerical_gradient(episode_loss, bottom.data)) < 1e-6
    assert 0.0 <= task.evaluate()["val_episode_accuracy"] <= 1.0


def test_the_baseline_classifiers_by_hand():
    support = np.array([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.1], [-1.0, -0.1]]])  # (2 classes, 2 shots, 2)
    query = np.array([[0.1, 0.9], [-0.9, 0.0], [0.7, -0.1]])
    assert classify_episode("1-nn", support, query).tolist() == [0, 1, 0]
    # class 0's unit mean is (0.71, 0.71): (0.7, -0.1) is nearer, by cosine, to class 0 than to (-1, 0)
    assert classify_episode("prototype-cosine", support, query).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="unknown episode classifier"):
        classify_episode("knn", support, query)


def test_episode_accuracies_and_the_confidence_interval():
    embeddings = np.repeat(np.eye(3), 5, axis=0)  # three classes, each one point: every episode is right
    sampler = EpisodeSampler(np.repeat(np.arange(3), 5), [[0, 1, 2]], 3, 2, 3, seed=0)
    assert episode_accuracies(embeddings, sampler, 5, "1-nn").tolist() == [1.0] * 5
    mean, half = mean_ci95(np.array([0.5, 1.0, 0.5, 1.0]))
    assert mean == 0.75 and abs(half - 1.96 * np.sqrt(1 / 12) / 2) < 1e-12  # sd = sqrt(1/12), n = 4
