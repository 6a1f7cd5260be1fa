"""``python -m jexkv``: the command line (see jexkv.cli)."""

from jexkv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
