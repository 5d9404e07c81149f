"""Training a small transformer from scratch on a synthetic corpus where induction pays, with
log-spaced ``save_pretrained`` checkpoints, so the formation of induction heads can be watched.

- :mod:`~induction_nnsight.training.corpus`: the corpus (random tokens with repeated spans), a
  pure function of ``(seed, step)``.
- :mod:`~induction_nnsight.training.config`: ``TrainSettings``, the model's transformers config,
  the checkpoint steps.
- :mod:`~induction_nnsight.training.loop`: ``train``, the resumable loop (progress bar, JSON-lines loss log).

May import :mod:`induction_nnsight.models`, :mod:`induction_nnsight.probes` and
:mod:`induction_nnsight.errors`.
"""
