"""A stand-in workflow for production tests: real payloads, a search attribute, metrics hooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from cotpay.codes import error_for
    from workflows.pseudonym import search_id_hex_salt

SELLER_ID = SearchAttributeKey.for_keyword("SellerId")
ESCROW_STATUS = SearchAttributeKey.for_keyword("EscrowStatus")


class ProbeInput(BaseModel):
    seller_id: str
    buyer_name: str
    buyer_email: str
    search_salt: str | None = None
    fail_with: str | None = None
    hold: bool = False


class ProbeView(BaseModel):
    status: str
    buyer_name: str
    paid_out_at: datetime | None = None
    payout_not_before: datetime | None = None


@activity.defn(name="cotpay.payment")
async def payment(inp: ProbeInput) -> str:
    return f"paid to {inp.seller_id}"


@activity.defn(name="cotpay.verify_order")
async def verify_order(inp: ProbeInput) -> str:
    raise error_for(10800, "payout failed", endpoint="verify-order")


@workflow.defn(name="ProductionProbe")
class ProbeWorkflow:
    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self, inp: ProbeInput) -> ProbeView:
        if inp.hold:
            workflow.upsert_search_attributes([ESCROW_STATUS.value_set("NEEDS_ATTENTION")])
            await workflow.wait_condition(lambda: self.released)
            workflow.upsert_search_attributes([ESCROW_STATUS.value_set("PAID_OUT")])
        seller = inp.seller_id
        if inp.search_salt is not None:
            seller = search_id_hex_salt(inp.seller_id, inp.search_salt)
        workflow.upsert_search_attributes([SELLER_ID.value_set(seller)])
        once = RetryPolicy(maximum_attempts=1)
        await workflow.execute_activity(
            payment, inp, start_to_close_timeout=timedelta(seconds=10), retry_policy=once
        )
        try:
            await workflow.execute_activity(
                verify_order, inp, start_to_close_timeout=timedelta(seconds=10), retry_policy=once
            )
        except Exception:
            workflow.logger.info("verify failed as planned")
        if inp.fail_with is not None:
            raise workflow_failure(inp.fail_with)
        not_before = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
        return ProbeView(
            status="PAID_OUT",
            buyer_name=inp.buyer_name,
            paid_out_at=not_before + timedelta(minutes=30),
            payout_not_before=not_before,
        )


def workflow_failure(message: str) -> Exception:
    from temporalio.exceptions import ApplicationError

    return ApplicationError(message, non_retryable=True)
