"""Benchmarks of the induction scan against a plain forward pass, the tutorial approach and TransformerLens."""
