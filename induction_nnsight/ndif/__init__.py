"""NDIF: turning a trace function's ``remote`` flag into an nnsight backend (NDIF, or a local
dry run of a remote request), and the settings, checks and error messages around it.

Trace functions in :mod:`~induction_nnsight.scores` and :mod:`~induction_nnsight.causal` use it;
it may import only :mod:`induction_nnsight.models` and :mod:`induction_nnsight.errors`.
"""
