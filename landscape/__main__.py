"""`python -m landscape` is the `landscape` command."""

from landscape.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
