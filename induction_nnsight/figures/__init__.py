"""Plotly figure builders: plain data (lists, dicts, numbers) in, ``go.Figure`` out; and
:mod:`~induction_nnsight.figures.attention_html`, plain data in, a self-contained interactive
HTML attention view out.

A stage beside the data flow rather than on it, so that result objects (scores, causal,
dynamics) and the application can draw with it. May import nothing from the package.
"""
