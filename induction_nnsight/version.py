"""The package's version: one definition, read by pyproject.toml, ``induction_nnsight.__version__`` and
``induction-nnsight --version``."""

__version__ = "0.1.0"
VERSION_LINE = f"induction-nnsight {__version__}"
"""What ``induction-nnsight --version`` prints."""
