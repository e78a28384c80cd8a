"""The built-in rule types, one module per id group (`length.py` holds `length:*`), except
`ifeval.py`, which holds IFEval's 25 instruction types under IFEval's own groups.

Each module ends with `TYPES`, the tuple the registry (`rules/registry.py`) lists.
"""
