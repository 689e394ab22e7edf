"""recall@k and precision@k with class-level relevance, worked by hand; a linear probe that must find a linear label."""

from minillm.backend import np
from minillm.tasks.retrieval import linear_probe, retrieval_scores


def test_retrieval_scores_by_hand():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    candidates = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]])
    labels_c = np.array([0, 1, 1, 2])
    # query 0 (label 2): order 0, 2, 1, 3 -> its label only at rank 4; query 1 (label 1): rank 1;
    # query 2 (label 0): order 2 (0.96), 1 (0.8), 0 (0.6) -> rank 3
    result = retrieval_scores(queries, np.array([2, 1, 0]), candidates, labels_c, ks=(1, 3, 4), precision_k=2)
    # precision in the top 2: query 0 none, query 1 both (candidates 1 and 2), query 2 none
    assert result == {"R@1": 1 / 3, "R@3": 2 / 3, "R@4": 1.0, "P@2": 1 / 3}


def test_linear_probe_finds_a_linear_label_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0).astype(int)  # four classes, linear in x
    result = linear_probe(x[:300], y[:300], x[300:], y[300:], n_classes=4, steps=200)
    assert result["accuracy"] > 0.9
    noise = linear_probe(x[:300], rng.integers(0, 4, 300), x[300:], y[300:], n_classes=4, steps=200)
    assert noise["accuracy"] < 0.5
