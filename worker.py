"""Runs the Temporal worker: ``python worker.py``."""

if __name__ == "__main__":
    raise SystemExit("the worker is not written yet")
