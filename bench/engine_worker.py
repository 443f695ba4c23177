"""``python -m bench.engine_worker``: a worker process for the engine baseline
(``bench/engine_workflow.py``), on ``TEMPORAL_*`` like the escrow worker, until SIGTERM/SIGINT.

It gets the escrow worker's data converter (``ESCROW_CODEC_*``) and slot and cache settings
(``ESCROW_WORKER_*``), so the two differ only in what their workflows do (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.worker import Worker

from bench.engine_workflow import ENGINE_TASK_QUEUE, EngineOrderWorkflow, engine_step
from cotpay.logs import configure_logging
from runtime.metrics import MetricsSettings, temporal_runtime
from runtime.temporal import TemporalConfig, connect
from runtime.worker_tuning import WorkerTuning, shared_modules_runner


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(
        TemporalConfig.from_env(),
        runtime=temporal_runtime(MetricsSettings().sdk_metrics_address),
    )
    tuning = WorkerTuning()
    options = tuning.worker_kwargs()
    if not tuning.reload_workflow_modules:
        options["workflow_runner"] = shared_modules_runner("bench")
    worker = Worker(
        client,
        task_queue=ENGINE_TASK_QUEUE,
        workflows=[EngineOrderWorkflow],
        activities=[engine_step],
        **options,
    )
    async with worker:
        await stop.wait()


def main() -> int:
    configure_logging("console", logging.WARNING)
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
