"""Causal validation: metrics on a run's logits, batched variants of one trace, head outputs,
ablation, activation patching, attribution patching and the clean/corrupted pairs they run on.

May import :mod:`~induction_nnsight.models`, :mod:`~induction_nnsight.probes`,
:mod:`~induction_nnsight.ndif`, :mod:`~induction_nnsight.scores`, :mod:`~induction_nnsight.figures` and
:mod:`~induction_nnsight.errors`.
"""
