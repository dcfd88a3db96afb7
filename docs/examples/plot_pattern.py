"""
The missing-data pattern
========================

``df.mi.pattern()`` reproduces mice's ``md.pattern``: one row per pattern of observed
(blue) and missing (red) values, with how many rows show it. Here the classroom data of
experiment 2 are amputed once more, with whole classes missing ``relation``.
"""

import mlimpute
from mlimpute.datasets import classroom

full = classroom(2, rng=1).complete
df = mlimpute.ampute(
    full,
    "class",
    {"grade": 0.3, "relation": 0.2, "gender": 0.1},
    mechanism="MAR",
    depends_on=["skill"],
    systematic={"grade": 0.0, "relation": 0.1, "gender": 0.0},
    rng=3,
)
pattern = df.mi.pattern()
print(pattern)
fig = pattern.plot()
