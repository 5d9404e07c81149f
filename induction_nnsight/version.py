"""The package's version: one definition, read by pyproject.toml, ``induction_nnsight.__version__`` and
``induction-nnsight --version``."""

__version__ = "0.1.0"
