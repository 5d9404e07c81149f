"""The application: the ``induction-nnsight`` command line and one module per job.

- The command line: :mod:`~.entry` (the light entry point), :mod:`~.cli` (parses, wires a job and prints
  from its typed result), :mod:`~.arguments` and :mod:`~.options` (each option declared once, on a config
  field), :mod:`~.outputs` (strict-JSON files, one run id per set), :mod:`~.interrupts`, :mod:`~.plan_job`
  (``--plan``) and :mod:`~.report` (the printed text).
- What every job builds on: :mod:`~.jobs` (model and token settings, preflight, the journal),
  :mod:`~.results` (:class:`~.results.JobResult`: a typed result and its ``to_json()``),
  :mod:`~.run_context` (how a job runs) and :mod:`~.causal_options` (the causal jobs' shared settings).
- One module per job, ``<command>_job.py``: typed settings in, a typed result and chart files out
  (``scan_job``, ``heads_job``, ``attention_job``, ``ablate_job``, ``patch_job``, ``circuit_job``,
  ``icl_job``, ``dual_route_job``, ``train_job``, ``dynamics_job``, ``explain_job``), with the helpers only
  one job uses beside it (``ablate_search``, ``patch_pairs``, ``checkpoint_extras``, ``explain_result``,
  ``explain_text``, ``explain_journal``).

The Plotly figure builders the jobs call live in :mod:`induction_nnsight.figures`. The last stage of the
data flow: it may import every other subpackage; none imports it.
"""
