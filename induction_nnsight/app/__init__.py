"""The application: typed job configs, jobs (settings in, results and chart files out), Plotly
figure builders, text reports, strict-JSON output files and the ``induction-nnsight`` CLI.

The last stage of the data flow: it may import every other subpackage; none imports it.
"""
