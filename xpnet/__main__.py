"""``python -m xpnet``: the same command line as the ``xpnet`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
