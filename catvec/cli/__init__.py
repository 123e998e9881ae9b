"""The `catvec` command line: `main.py` parses and dispatches, one module per command (cli/<command>.py)."""
