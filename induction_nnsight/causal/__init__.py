"""Causal validation: metrics on a run's logits, batched variants of one trace, head outputs,
ablation, activation patching, attribution patching and the clean/corrupted pairs they run on.

Grouped by concept, each subpackage on the flat modules here (metrics, pairs, variants, head outputs and
weights, intervals, cost, composition, the QK fix):

- :mod:`.ablation`: how a head is removed, the exact sweeps and curves, the head estimators and the
  estimate-then-verify search;
- :mod:`.patching`: activation patching, one engine (:func:`~.patching.engine.patch`) at a site;
- :mod:`.paths`: path patching, its traces, edits, estimates and search (also on :mod:`.ablation`);
- :mod:`.dual_route`: token and concept induction;
- :mod:`.circuit`: the induction circuit, on top of them all.

Imports inside run only down that list (checked by ``tests/unit/test_architecture.py``).

May import :mod:`~induction_nnsight.models`, :mod:`~induction_nnsight.probes`,
:mod:`~induction_nnsight.ndif`, :mod:`~induction_nnsight.scores`, :mod:`~induction_nnsight.figures` and
:mod:`~induction_nnsight.errors`.
"""
