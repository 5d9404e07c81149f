"""Probes: the token batches a trace runs on (repeated random tokens, ABAB, separators, small
vocabularies, real text), each with its ground truth (period, repeated-copy queries).

May import :mod:`induction_nnsight.models` and :mod:`induction_nnsight.errors`.
"""
