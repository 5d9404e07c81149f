"""Plotly figure builders: plain data (lists, dicts, numbers) in, ``go.Figure`` out.

A stage beside the data flow rather than on it, so that result objects (scores, causal,
dynamics) and the application can draw with it. May import nothing from the package.
"""
