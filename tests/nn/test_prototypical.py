"""Prototype logits and first-order Proto-MAML against finite differences (float64), and their values by hand."""

from hypothesis import given, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.nn.prototypical import (adapt_head, proto_maml_logits_backward, proto_maml_logits_forward,
                                     prototype_head, prototype_logits_backward, prototype_logits_forward)

seeds = st.integers(0, 2**31 - 1)
episodes = st.tuples(seeds, st.integers(1, 4), st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))


def _episode(seed, n, k, m, d):
    rng = xp.random.default_rng(seed)
    return rng.standard_normal((n, k, d)), rng.standard_normal((m, d)), xp.asarray(rng.integers(0, n, m))


@given(episodes)
def test_prototype_logits_gradients(episode):
    support, query, _ = _episode(*episode)
    cache = {}

    def forward(s, q):
        z, cache["c"] = prototype_logits_forward(s, q)
        return z

    errors = gradcheck(forward, lambda dz: prototype_logits_backward(dz, cache["c"]), [support, query])
    assert_gradients_close(errors, ["input0", "input1"])


@given(episodes)
def test_the_episode_loss_gradients(episode):
    """The query cross-entropy through the prototypes, as a training step composes them."""
    support, query, labels = _episode(*episode)
    cache = {}

    def forward(s, q):
        z, cache["z"] = prototype_logits_forward(s, q)
        loss, cache["ce"] = cross_entropy_forward(z, labels)
        return loss.reshape(1)

    def backward(dloss):
        return prototype_logits_backward(cross_entropy_backward(dloss.reshape(()), cache["ce"]), cache["z"])

    assert_gradients_close(gradcheck(forward, backward, [support, query]), ["input0", "input1"])


def test_prototype_logits_by_hand():
    support = xp.array([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 4.0], [0.0, 2.0]]])  # prototypes (1, 0) and (0, 3)
    z, _ = prototype_logits_forward(support, xp.array([[1.0, 1.0]]))
    assert to_host(z).tolist() == [[-1.0, -5.0]]  # -(0 + 1), -(1 + 4)


@given(episodes)
def test_the_prototype_head_classifies_as_the_prototypes(episode):
    support, query, _ = _episode(*episode)
    w, b = prototype_head(support)
    z, _ = prototype_logits_forward(support, query)
    gap = (query @ w.T + b) - z  # ||q||^2 on every class: the same softmax
    assert to_float(abs(gap - (query * query).sum(axis=1, keepdims=True)).max()) < 1e-9


@given(episodes, st.integers(0, 3))
def test_proto_maml_query_gradient_and_exact_gradient_without_inner_steps(episode, steps):
    support, query, _ = _episode(*episode)
    cache = {}

    def forward(s, q):
        z, cache["c"] = proto_maml_logits_forward(s, q, steps, 0.3)
        return z

    def backward(dz):
        ds, dq = proto_maml_logits_backward(dz, cache["c"])
        return (ds if steps == 0 else None), dq  # with inner steps the support's gradient is first-order only

    expected = ["input0", "input1"] if steps == 0 else ["input1"]
    assert_gradients_close(gradcheck(forward, backward, [support, query]), expected)


def test_adapt_head_is_gradient_descent_on_the_support_loss():
    x, y = xp.array([[1.0, 0.0], [0.0, 1.0]]), xp.array([0, 0])  # both labelled 0: class 0 must gain
    w, b = xp.zeros((2, 2)), xp.zeros(2)
    w1, b1 = adapt_head(w, b, x, y, 1, 1.0)
    # dz = (softmax(0) - onehot) / 2 = [[-0.25, 0.25]] for each row; W' = -dz^T x, b' = -sum dz
    assert to_host(w1).tolist() == [[0.25, 0.25], [-0.25, -0.25]] and to_host(b1).tolist() == [0.5, -0.5]
    loss0 = to_float(cross_entropy_forward(x @ w.T + b, y)[0])
    w5, b5 = adapt_head(w, b, x, y, 5, 1.0)
    assert to_float(cross_entropy_forward(x @ w5.T + b5, y)[0]) < loss0
