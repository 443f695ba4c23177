"""The engine baseline: a no-op workflow with the escrow order's shape (docs/benchmarks.md).

``BenchEngineOrder`` makes three activities (as the escrow makes ``customer_id``,
``create_order`` and ``verify_order``), answers the ``created`` update once they are done (as
``payment_info`` answers with Cotpay's payment data), waits for the ``paid`` signal (the IPN) and
the ``delivered`` signal (the shop's delivery), then makes one more activity (the payout) and
completes. The activity does nothing. It runs on its own task queue with the same data
converter as the escrow worker, so what it costs is what Temporal and the SDK cost.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

ENGINE_WORKFLOW = "BenchEngineOrder"
ENGINE_TASK_QUEUE = "bench-engine"
ENGINE_ACTIVITY = "bench.engine.step"
_STEPS = ("customer_id", "create_order", "verify_order")


@activity.defn(name=ENGINE_ACTIVITY)
async def engine_step(step: str) -> str:
    return step


@workflow.defn(name=ENGINE_WORKFLOW)
class EngineOrderWorkflow:
    def __init__(self) -> None:
        self._created = False
        self._paid = False
        self._delivered = False

    @workflow.run
    async def run(self, order_ref: str) -> str:
        for step in _STEPS:
            await workflow.execute_activity(
                engine_step, step, start_to_close_timeout=timedelta(seconds=35)
            )
        self._created = True
        await workflow.wait_condition(lambda: self._paid)
        await workflow.wait_condition(lambda: self._delivered)
        await workflow.execute_activity(
            engine_step, "payment", start_to_close_timeout=timedelta(seconds=35)
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return order_ref

    @workflow.update
    async def created(self) -> str:
        await workflow.wait_condition(lambda: self._created)
        return "created"

    @workflow.signal
    def paid(self) -> None:
        self._paid = True

    @workflow.signal
    def delivered(self) -> None:
        self._delivered = True
