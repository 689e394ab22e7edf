"""Finite-difference gradient checks: is a hand-written backward right?

For a function y = f(x) and a fixed random upstream gradient g, the scalar
L = sum(y * g) has dL/dx = backward(g). Central differences estimate it:

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

with truncation error O(eps^2) and rounding error about u |L| / eps (u the
float64 unit roundoff): a correct backward agrees to about 1e-9 relative, a
wrong one is off by order 1. Where the gradient itself is as small as that
rounding error (a saturated softmax), no relative error can be resolved, so
differences below the rounding error are not counted.
"""

from minillm.backend import to_float, xp

UNIT_ROUNDOFF = 2.0**-53


def relative_error(analytic, numeric, resolution=0.0):
    """max(||a - n|| - resolution, 0) / (||a|| + ||n||): scale-free, 0 when both are 0.

    resolution: the norm of the finite-difference rounding error, below which
    a difference says nothing about the backward.
    """
    diff = max(to_float(xp.linalg.norm((analytic - numeric).ravel())) - resolution, 0.0)
    scale = to_float(xp.linalg.norm(analytic.ravel())) + to_float(xp.linalg.norm(numeric.ravel()))
    return 0.0 if scale == 0.0 else diff / scale


def numerical_gradient(loss, x, eps=1e-6):
    """(dloss/dx by central differences, resolution), perturbing x in place one entry at a time.

    resolution = 10 u max|L| / eps * sqrt(size): a generous bound on the norm of
    the rounding error of the estimate.
    """
    grad = xp.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writes reach x
    largest = 0.0
    for i in range(flat.size):
        keep = flat[i].copy()
        flat[i] = keep + eps
        up = loss()
        flat[i] = keep - eps
        down = loss()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
        largest = max(largest, abs(up), abs(down))
    return grad, 10 * UNIT_ROUNDOFF * largest / eps * flat.size**0.5


def gradcheck(forward, backward, inputs, params=(), eps=1e-6, seed=0):
    """Relative error of backward against finite differences, for each input and parameter.

    forward(*inputs) -> output array; backward(dout) -> the gradient of each
    input (a tuple, or one array for one input; None for inputs without one,
    such as integer indices); params: (name, Parameter) pairs whose .grad the
    backward fills. Returns {"input0": err, ..., name: err}.
    """
    out = forward(*inputs)
    dout = xp.random.default_rng(seed).standard_normal(out.shape)
    for _, p in params:
        p.grad = None
    dinputs = backward(dout)
    if not isinstance(dinputs, tuple):
        dinputs = (dinputs,)

    def loss():
        return to_float((forward(*inputs) * dout).sum())

    errors = {}
    for i, (x, dx) in enumerate(zip(inputs, dinputs)):
        if dx is not None and xp.issubdtype(x.dtype, xp.floating):
            errors[f"input{i}"] = relative_error(dx, *numerical_gradient(loss, x, eps))
    for name, p in params:
        analytic = p.grad if p.grad is not None else xp.zeros_like(p.data)
        errors[name] = relative_error(analytic, *numerical_gradient(loss, p.data, eps))
    return errors


def gradcheck_module(module, *inputs, eps=1e-6, seed=0, **kwargs):
    """gradcheck for a Module: its forward (with kwargs), its backward, all its parameters."""
    return gradcheck(lambda *a: module.forward(*a, **kwargs), module.backward, inputs,
                     list(module.named_parameters()), eps=eps, seed=seed)


def assert_gradients_close(errors, expected_names=(), tol=1e-6):
    """Fail unless something was checked, every name in expected_names among it, each relative error <= tol."""
    assert errors, "nothing was checked"
    unchecked = set(expected_names) - set(errors)
    assert not unchecked, f"unchecked: {unchecked}"
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"relative errors above {tol}: {bad}"
