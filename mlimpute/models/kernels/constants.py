"""The constants of the logarithm and exponential that the compiled kernels and their
numpy twins both compute (:mod:`mlimpute.models.kernels.elementary`,
:mod:`mlimpute.models.ordered.elementary`).

A plain module: importing it does not import numba (the numpy twins read it too).
"""

from __future__ import annotations

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"

#: the constants of the logarithm and the exponential; ``LN2_HI`` has its last 32 bits zero, so
#: that its product with a binary exponent is exact, and ``LN2_HI + LN2_LO`` is log 2
#: to about 1e-26 (the split of fdlibm's ``e_log.c`` and ``e_exp.c``, Sun Microsystems 1993)
SQRT_HALF = 0.7071067811865476
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
EXP_MAX = 709.782712893384
EXP_MIN = -745.1332191019412
#: 1/3, 1/5, ..., 1/21: log m = 2s + 2s z (1/3 + z/5 + ...), s = (m - 1)/(m + 1), z = s²
L = (
    0.3333333333333333,
    0.2,
    0.14285714285714285,
    0.1111111111111111,
    0.09090909090909091,
    0.07692307692307693,
    0.06666666666666667,
    0.058823529411764705,
    0.05263157894736842,
    0.047619047619047616,
)
#: 1/0!, 1/1!, ..., 1/13!: the Taylor polynomial of exp on |r| <= log(2)/2
E = (
    1.0,
    1.0,
    0.5,
    0.16666666666666666,
    0.041666666666666664,
    0.008333333333333333,
    0.001388888888888889,
    0.0001984126984126984,
    2.48015873015873e-05,
    2.7557319223985893e-06,
    2.755731922398589e-07,
    2.505210838544172e-08,
    2.08767569878681e-09,
    1.6059043836821613e-10,
)
