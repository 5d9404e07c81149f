"""Training dynamics: a series of checkpoints (a training run's ``checkpoint-STEP/`` directories,
explicit directories, or Hub revisions such as Pythia's ``step1000``) sorted by step, each scored
with one heads pass on the same repeated-token probe (loss halves, ICL score, every head's
induction, previous-token, prefix-matching and duplicate-token scores), a cache of the
checkpoints already scored, and the test for a phase change.

- :mod:`~induction_nnsight.dynamics.checkpoints`: ``Checkpoint``, ``find_checkpoints``, ``hub_checkpoints``.
- :mod:`~induction_nnsight.dynamics.scoring`: ``ProbeSettings``, ``score_checkpoint``, ``score_checkpoints``.
- :mod:`~induction_nnsight.dynamics.results`: ``CheckpointScores``, what ``score_checkpoints`` returns.
- :mod:`~induction_nnsight.dynamics.phase`: ``bootstrap_best``, ``phase_test``, ``phase_change``: the
  phase-change test with a null.
- :mod:`~induction_nnsight.dynamics.series`: ``fresh_loss_bump``, ``phase_spread``, ``seed_runs``,
  ``read_loss_log``: what a training run's loss log and seeds add.

May import :mod:`induction_nnsight.models`, :mod:`induction_nnsight.probes`,
:mod:`induction_nnsight.ndif`, :mod:`induction_nnsight.scores`, :mod:`induction_nnsight.figures` and
:mod:`induction_nnsight.errors`.
"""
