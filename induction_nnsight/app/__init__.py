"""The application: typed job configs whose fields declare the command-line options, jobs
(settings in, results and chart files out), text reports, strict-JSON output files and the
``induction-nnsight`` CLI. The Plotly figure builders the jobs call live in
:mod:`induction_nnsight.figures`.

The last stage of the data flow: it may import every other subpackage; none imports it.
"""
