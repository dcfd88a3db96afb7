"""
Tipping point: how far from MAR before the conclusion changes?
==============================================================

Imputation assumes the data are missing at random. In experiment 2 of the classroom
example, ``grade`` is missing more often for boys (probability .6) than for girls (.2),
which imputation handles when the missingness depends on gender only. What if the
children whose grade is missing had higher grades than their classmates with the same
gender, skill and relation — missing not at random?

``mlimpute.sensitivity`` shifts every imputed ``grade`` by δ inside the chains
(δ-adjustment) and repeats imputation and analysis for each δ with the same random
numbers; δ = 0 is the MAR analysis. Because more boys' grades are imputed, the shift
moves the gender difference; where its interval reaches zero, the conclusion tips.
"""

import mlimpute

df = mlimpute.datasets.classroom(2, rng=1).incomplete
res = mlimpute.sensitivity(
    df,
    {
        "grade": "~ skill + gender + relation + (1 | class)",
        "relation": "~ skill + gender + grade + (1 | class)",
    },
    delta={"grade": [0, 1, 2, 3, 4]},
    analysis="grade ~ skill + gender + (1 | class)",
    m=5,
    iterations=10,
    rng=1,
)
table = res.table
print(table[table["term"] == "gender"].round(3).to_string(index=False))
ax = res.plot("gender")
ax.figure.tight_layout()
