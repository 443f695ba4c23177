"""The store's models: pure (workflow code may import them) and carried by Temporal's
pydantic data converter as the write activity's payload."""

from __future__ import annotations

import subprocess
import sys

from temporalio.contrib.pydantic import pydantic_data_converter

from store.models import OrderWrite
from tests.store.factories import T0, full_view


def test_store_models_import_no_database_code() -> None:
    probe = (
        "import sys, store.models; "
        "bad = [m for m in ('sqlalchemy', 'alembic', 'aiosqlite', 'asyncpg') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_write_survives_the_data_converter() -> None:
    write = OrderWrite.from_view(full_view("conv-1"), created_at=T0)
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([write])
    assert b'"lastSeq":6' in payloads[0].data
    assert "Bắt đầu".encode() in payloads[0].data
    (back,) = converter.from_payloads(payloads, [OrderWrite])
    assert back == write
