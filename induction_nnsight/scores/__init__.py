"""Scores: the head-score registry and the built-in scores, the pure reductions they use, the one
forward pass that computes every registered score (and the loss by position) inside a trace, the
scan built on it, head detection with bootstrap intervals, the one ranking rule, and the interactive
attention view of chosen heads (:mod:`~induction_nnsight.scores.attention_view`).

May import :mod:`~induction_nnsight.models`, :mod:`~induction_nnsight.probes`,
:mod:`~induction_nnsight.ndif`, :mod:`~induction_nnsight.figures` and :mod:`~induction_nnsight.errors`.
"""
