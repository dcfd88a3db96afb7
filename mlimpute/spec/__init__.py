"""The imputation specification, from the user's arguments to a validated plan.

``grammar`` checks formulas against mlimpute's own grammar (formulas are data, never
code), ``formula`` parses them into fixed and random parts, ``defaults`` classifies every
column and writes the default models, ``arguments`` checks the arguments' types and
``build`` assembles and validates the frozen :class:`~mlimpute.spec.build.ImputationSpec`.
"""
