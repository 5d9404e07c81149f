"""``python -m induction_nnsight``: the same as the ``induction-nnsight`` command."""

if __name__ == "__main__":
    import sys

    from .app.entry import main

    sys.exit(main())
