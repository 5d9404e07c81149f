"""NDIF: turning a trace function's ``remote`` flag into an nnsight backend (NDIF, or a local
dry run of a remote request), and the settings, checks and error messages around it.

- :mod:`~induction_nnsight.ndif.settings`: the ``remote`` flag (``Remote``, ``RemoteSettings``,
  ``as_settings``, ``on_ndif``), host and API key, ``redact``, ``DEFAULT_TIMEOUT``.
- :mod:`~induction_nnsight.ndif.execution`: ``Execution``, how a job's traces run (remote, sizes,
  progress) as one object, and the default sizes.
- :mod:`~induction_nnsight.ndif.status`: model keys, the host's running models, ``check_hosted``.
- :mod:`~induction_nnsight.ndif.backend`: ``remote_backend`` and ``NdifBackend``.
- :mod:`~induction_nnsight.ndif.dry_run`: ``DryRunBackend``, the ``remote="local"`` dry run.
- :mod:`~induction_nnsight.ndif.transfers`: ``Transfer`` and ``describe_transfers``.
- :mod:`~induction_nnsight.ndif.internals`: the only uses of nnsight's private names.

Several traces that belong together go in one request through a session::

    with model.session(backend=remote_backend(model, remote)):
        with model.trace(clean):
            clean_loss = nnsight.save(...)
        with model.trace(corrupted):
            corrupted_loss = nnsight.save(...)

(inner traces take no backend: the whole session block runs on the server).

Trace functions in :mod:`~induction_nnsight.scores` and :mod:`~induction_nnsight.causal` use it;
it may import only :mod:`induction_nnsight.models` and :mod:`induction_nnsight.errors`.
"""
