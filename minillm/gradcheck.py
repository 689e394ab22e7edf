"""Finite-difference gradient checks: is a hand-written backward right?

For a function y = f(x) and a fixed random upstream gradient g, the scalar
L = sum(y * g) has dL/dx = backward(g). Central differences estimate it:

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

with error O(eps^2), so in float64 with eps = 1e-6 a correct backward agrees
to about 1e-9 relative; a wrong one is off by order 1.
"""

from minillm.backend import xp


def relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||): scale-free, and 0 when both are exactly 0."""
    diff = float(xp.linalg.norm((analytic - numeric).ravel()))
    scale = float(xp.linalg.norm(analytic.ravel())) + float(xp.linalg.norm(numeric.ravel()))
    return 0.0 if scale == 0.0 else diff / scale


def numerical_gradient(loss, x, eps=1e-6):
    """dloss/dx by central differences, perturbing x in place one entry at a time."""
    grad = xp.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writes reach x
    for i in range(flat.size):
        keep = flat[i].copy()
        flat[i] = keep + eps
        up = loss()
        flat[i] = keep - eps
        down = loss()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return grad


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
        return float((forward(*inputs) * dout).sum())

    errors = {}
    for i, (x, dx) in enumerate(zip(inputs, dinputs)):
        if dx is not None and xp.issubdtype(x.dtype, xp.floating):
            errors[f"input{i}"] = relative_error(dx, numerical_gradient(loss, x, eps))
    for name, p in params:
        analytic = p.grad if p.grad is not None else xp.zeros_like(p.data)
        errors[name] = relative_error(analytic, numerical_gradient(loss, p.data, eps))
    return errors


def gradcheck_module(module, *inputs, eps=1e-6, seed=0, **kwargs):
    """gradcheck for a Module: its forward (with kwargs), its backward, all its parameters."""
    return gradcheck(lambda *a: module.forward(*a, **kwargs), module.backward, inputs,
                     list(module.named_parameters()), eps=eps, seed=seed)
