"""Plotly figure builders: plain data (lists, dicts, numbers) in, ``go.Figure`` out.

A stage beside the data flow rather than on it: it may import nothing from the package, so
every result object (scores, causal, dynamics) and the application can draw with it.
"""
