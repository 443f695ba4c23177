"""Cross-cutting runtime of the worker, the gateway, the CLI and the benchmark.

The Temporal connection (``temporal``), the data converter and payload codec (``codec``), the
codec server (``codec_server``), metrics (``metrics``), tracing (``tracing``) and the shared
``ESCROW_*`` settings (``settings``). It imports ``cotpay`` and ``workflows`` (models), never
``starter``, ``activities`` or ``worker.py`` (docs/architecture.md).
"""
