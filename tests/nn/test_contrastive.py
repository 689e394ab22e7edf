"""CLIP's loss: L2 normalisation and the symmetric InfoNCE loss (temperature included) against finite
differences, and its values in cases worked by hand; the same for SetFit's cosine regression of pairs."""

import math

from hypothesis import given, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.nn.contrastive import (MAX_LOG_SCALE, clip_loss_backward, clip_loss_forward, cosine_mse_backward,
                                    cosine_mse_forward, l2_normalize_backward, l2_normalize_forward)
from minillm.nn.gradcheck import assert_gradients_close, gradcheck

seeds = st.integers(0, 2**31 - 1)


@given(seeds, st.integers(1, 4), st.integers(2, 5))  # (with d = 1, y = sign(x) and the gradient is 0)
def test_l2_normalize(seed, n, d):
    x = xp.random.default_rng(seed).standard_normal((n, d)) + 0.1
    y, _ = l2_normalize_forward(x)
    assert to_float(abs((y * y).sum(axis=-1) - 1).max()) < 1e-9  # (eps = 1e-12 is added to the norm)
    cache = {}

    def forward(x):
        out, cache["c"] = l2_normalize_forward(x)
        return out

    assert_gradients_close(gradcheck(forward, lambda d: l2_normalize_backward(d, cache["c"]), [x]), ["input0"])


def _loss_check(u, v, t, positives):
    cache = {}

    def forward(u, v, t):
        loss, cache["c"] = clip_loss_forward(u, v, t, positives)
        return loss.reshape(1)

    return gradcheck(forward, lambda d: clip_loss_backward(d.reshape(()), cache["c"]), [u, v, t])


@given(seeds, st.integers(1, 5), st.integers(1, 4), st.floats(-1.0, 3.0))
def test_clip_loss_gradients_including_the_temperature(seed, n, d, t):
    rng = xp.random.default_rng(seed)
    u, v = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    errors = _loss_check(u, v, xp.array([t]), None)
    assert_gradients_close(errors, ["input0", "input1", "input2"])


@given(seeds, st.integers(2, 5), st.integers(1, 4))
def test_clip_loss_gradients_with_several_positives(seed, m, d):
    rng = xp.random.default_rng(seed)
    labels_u, labels_v = rng.integers(0, 2, m + 1), xp.array([0, 1] + [1] * (m - 2))
    labels_u[:2] = [0, 1]  # every row and column has a positive
    positives = (labels_u[:, None] == labels_v[None, :]).astype("float64")
    errors = _loss_check(rng.standard_normal((m + 1, d)), rng.standard_normal((m, d)), xp.array([0.5]), positives)
    assert_gradients_close(errors, ["input0", "input1", "input2"])


def test_clip_loss_values_and_the_clamp():
    u = xp.eye(2)
    loss, _ = clip_loss_forward(u, u, xp.array([0.0]))  # z = I: each row log-softmax of [1, 0]
    assert abs(to_float(loss) - math.log(1 + math.exp(-1))) < 1e-12
    loss, _ = clip_loss_forward(u, u[::-1], xp.array([0.0]))  # every pair is the wrong one
    assert abs(to_float(loss) - math.log(1 + math.exp(1))) < 1e-12
    # above log 100 the scale stays 100 and the temperature gets no gradient
    loss, cache = clip_loss_forward(u, u[::-1], xp.array([MAX_LOG_SCALE + 1]))
    assert abs(to_float(loss) - math.log(1 + math.exp(100))) < 1e-9
    assert to_host(clip_loss_backward(1.0, cache)[2]).tolist() == [0.0]
    # two positives per row: the target is split between them, so equal logits are already optimal
    same = xp.array([[1.0, 0.0], [1.0, 0.0]])
    loss, cache = clip_loss_forward(same, same, xp.array([0.0]), xp.ones((2, 2)))
    assert abs(to_float(loss) - math.log(2)) < 1e-12
    assert to_float(abs(clip_loss_backward(1.0, cache)[0]).max()) == 0.0


@given(seeds, st.integers(1, 5), st.integers(2, 5), st.floats(0.1, 10.0))
def test_cosine_mse_gradients(seed, p, d, scale):
    rng = xp.random.default_rng(seed)
    a, b = scale * rng.standard_normal((p, d)), rng.standard_normal((p, d))  # the loss ignores the lengths
    target = rng.integers(0, 2, p).astype("float64")
    cache = {}

    def forward(a, b):
        loss, cache["c"] = cosine_mse_forward(a, b, target)
        return loss.reshape(1)

    errors = gradcheck(forward, lambda d: cosine_mse_backward(d.reshape(()), cache["c"]), [a, b])
    assert_gradients_close(errors, ["input0", "input1"])


def test_cosine_mse_values_by_hand():
    # pair 0: same direction, target 1 -> 0; pair 1: at 90 degrees, target 1 -> 1; pair 2: cos 0.6, target 0 -> 0.36
    a = xp.array([[2.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    b = xp.array([[5.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    loss, cache = cosine_mse_forward(a, b, xp.array([1.0, 1.0, 0.0]))
    assert abs(to_float(loss) - (0 + 1 + 0.36) / 3) < 1e-12
    da, db = cosine_mse_backward(1.0, cache)
    assert to_float(abs(da[0]).max()) < 1e-12  # at its target: no gradient
    # pair 1: dcos = 2 (0 - 1) / 3, du = dcos v = (0, -2/3), already across the sphere at u = (1, 0), ||a|| = 1
    assert to_float(abs(da[1] - xp.array([0.0, -2 / 3])).max()) < 1e-12
