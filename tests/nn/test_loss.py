"""The distillation loss and the L2 penalty: values against the definitions, gradients against finite differences."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.loss import (distillation_backward, distillation_forward, l2_penalty_backward, l2_penalty_forward,
                             log_softmax)


@given(st.integers(0, 2**31 - 1), st.integers(1, 5), st.integers(2, 6), st.floats(0.5, 8.0))
def test_distillation_loss_and_gradient(seed, n, k, temperature):
    rng = xp.random.default_rng(seed)
    student, teacher = rng.standard_normal((n, k)) * 3, rng.standard_normal((n, k)) * 3
    loss, _ = distillation_forward(student, teacher, temperature)
    expected = 0.0
    for s_row, t_row in zip(to_host(student).tolist(), to_host(teacher).tolist()):
        zs = sum(math.exp(v / temperature) for v in s_row)
        zt = sum(math.exp(v / temperature) for v in t_row)
        p = [math.exp(v / temperature) / zt for v in t_row]
        q = [math.exp(v / temperature) / zs for v in s_row]
        expected += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert to_float(loss) == pytest.approx(temperature ** 2 * expected / n, rel=1e-9, abs=1e-12)

    state = {}

    def forward(s):
        value, state["cache"] = distillation_forward(s, teacher, temperature)
        return xp.asarray(value).reshape(1)

    errors = gradcheck(forward, lambda d: distillation_backward(d[0], state["cache"]), (student,))
    assert_gradients_close(errors, ["input0"])


def test_distillation_is_zero_when_the_student_matches():
    logits = xp.asarray([[1.0, -2.0, 0.5]])
    loss, cache = distillation_forward(logits + 4.0, logits, 2.0)  # a shift changes no probability
    assert abs(to_float(loss)) < 1e-12 and float(to_host(xp.abs(distillation_backward(1.0, cache)).max())) < 1e-12


def test_log_softmax_does_not_overflow():
    out = to_host(log_softmax(xp.asarray([[1000.0, 0.0]])))
    assert out[0, 0] == pytest.approx(0.0) and out[0, 1] == pytest.approx(-1000.0)


@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 4), st.floats(0.0, 3.0))
def test_l2_penalty_gradient_and_value(seed, rows, cols, strength):
    w = xp.random.default_rng(seed).standard_normal((rows, cols))
    loss, _ = l2_penalty_forward(w, strength)
    assert abs(to_float(loss) - 0.5 * strength * to_float((w * w).sum())) < 1e-12
    cache = {}

    def forward(w):
        out, cache["c"] = l2_penalty_forward(w, strength)
        return out.reshape(1)

    assert_gradients_close(gradcheck(forward, lambda d: l2_penalty_backward(d.reshape(()), cache["c"]), [w]),
                           ["input0"])
