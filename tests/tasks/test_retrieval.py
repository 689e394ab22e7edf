"""recall@k and precision@k with class-level relevance, worked by hand; a linear probe that must find a linear label;
the L2-regularised probe objective against finite differences, and a fit that reaches its minimum."""

from hypothesis import given, strategies as st

from minillm.backend import np, to_device, to_float, to_host, xp
from minillm.nn.gradcheck import assert_gradients_close, numerical_gradient, relative_error
from minillm.nn.layers import Linear
from minillm.tasks.retrieval import (fit_linear_probe, linear_probe, probe_objective, probe_predict,
                                     retrieval_scores)


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


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 4), st.integers(2, 4), st.floats(0.0, 2.0))
def test_probe_objective_gradient(seed, n, d, k, l2):
    rng = xp.random.default_rng(seed)
    probe = Linear(d, k, rng, std=1.0, dtype="float64")
    probe.bias.data[...] = rng.standard_normal(k)
    x, y = rng.standard_normal((n, d)), rng.integers(0, k, n)
    probe_objective(probe, x, y, l2)  # fills .grad
    analytic = {name: p.grad.copy() for name, p in probe.named_parameters()}
    errors = {name: relative_error(analytic[name], *numerical_gradient(
        lambda: to_float(probe_objective(probe, x, y, l2)), p.data)) for name, p in probe.named_parameters()}
    assert_gradients_close(errors, ["weight", "bias"])


def test_annealed_fit_reaches_the_minimum_of_the_regularised_objective():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = (x[:, 0] + 0.3 * rng.standard_normal(40) > 0).astype(int)
    probe, objective = fit_linear_probe(x, y, 2, steps=400, lr=0.1, l2=1 / 40, anneal=True)
    for p in probe.parameters():
        p.grad = None
    again = probe_objective(probe, to_device(x), to_device(y), 1 / 40)
    gradient = max(to_float(abs(p.grad).max()) for p in probe.parameters())
    assert gradient < 1e-4 and abs(to_float(again) - objective) < 1e-4
    assert probe_predict(probe, x) == (x @ to_host(probe.weight.data).T + to_host(probe.bias.data)).argmax(1).tolist()
