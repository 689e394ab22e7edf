"""The standard normal distribution's CDF and density, elementwise: what BERT's exact GELU needs.

    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    Phi(x) = 0.5 (1 + erf(x / sqrt 2)) = 0.5 erfc(-x / sqrt 2)

SciPy's erfc works out a float32 array in double precision, one element at
a time: ten times the cost of an exp, and with BERT's feed-forward
activations (B, T, 4C) a fifth of a frozen fine-tuning step. For float32
arrays on the CPU, Phi is made here from the exp that phi needs anyway:

    erfc(z) = t exp(-z^2) P(t),   t = 1 / (1 + z / 2),   z >= 0
    Phi(x) = c for x < 0, 1 - c for x >= 0,   c = 0.5 erfc(|x| / sqrt 2) = t P(t) sqrt(pi / 2) phi(x)

P (ERFCX_FIT, highest power first) is a degree-10 polynomial fitted to
erfc(z) exp(z^2) / t, a smooth function of t on (0, 1], by least squares
on the relative error at 4,000 Chebyshev nodes:

    t = 0.5 + 0.5 * np.cos(np.pi * (np.arange(4000) + 0.5) / 4000)
    g = scipy.special.erfcx(2 / t - 2) / t
    np.polynomial.polynomial.polyfit(t, g, 10, w=1 / g)[::-1]

Its own relative error is under 1.2e-8 for every z >= 0. Evaluated in float32
(a division, an exp and 25 products and sums), Phi is within 2.1e-7 of the
exact value (near x = 0, where c is near 0.5; SciPy's, rounded to float32,
within 6e-8) and within 1.3e-6 relatively down to x = -6; the GELU x Phi(x)
is within 1.3e-7 max(1, |x|) of the exact one, as with SciPy (1.1e-7).
Float64 arrays (the gradient checks) and devices (cupyx's erfc, one kernel)
take erfc's path: Phi(x) = 0.5 erfc(-x / sqrt 2).
"""

import math

from minillm.backend import erfc, host_arrays, xp

ERFCX_FIT = (0.04319543336, -0.2347335933, 0.4936949328, -0.4549739894, 0.1321770453, -0.05921135815,
             0.09346243446, 0.1753159758, 0.2468845747, 0.2820937538, 0.2820947952)


def cdf_and_pdf(x):
    """(Phi(x), phi(x)), each shaped as x and in its dtype."""
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)  # exp(-x^2 / 2)
    if x.dtype != xp.float32 or not host_arrays():
        cdf = erfc(x / -math.sqrt(2.0))
        cdf *= 0.5
    else:
        t = xp.abs(x)
        t *= 0.5 / math.sqrt(2.0)
        t += 1.0
        xp.reciprocal(t, out=t)  # t = 1 / (1 + z / 2), z = |x| / sqrt 2
        cdf = t * ERFCX_FIT[0]
        for coef in ERFCX_FIT[1:]:  # Horner: t P(t)
            cdf += coef
            cdf *= t
        cdf *= pdf
        cdf *= 0.5  # c = 0.5 erfc(z) = Phi(-|x|)
        xp.multiply(cdf, -2.0, out=t)
        t += 1.0
        t *= x >= 0
        cdf += t  # Phi(x) = c + (x >= 0) (1 - 2c): c below 0, 1 - c from 0 on
    pdf *= 1.0 / math.sqrt(2.0 * math.pi)
    return cdf, pdf
