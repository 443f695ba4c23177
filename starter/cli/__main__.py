"""``python -m starter.cli``: the same as ``cotpay-escrow``."""

from starter.cli import main

raise SystemExit(main())
