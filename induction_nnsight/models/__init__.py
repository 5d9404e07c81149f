"""Models: loading (Hub ids, local directories, GGUF files, the embedded SmolLM2), the fault-safe
weights cache, the model's layout (where its layers, attention, projections and norms live, and
its head counts) and access to its attention pattern inside a trace.

The first stage of the data flow; it may import only :mod:`induction_nnsight.errors`.
"""
