"""The async Python client for shop backends and operators: one escrow order = one workflow.

Starting is idempotent on ``orderRef``. ASSUMPTION: two starts are "the same order" when the
fields in ``compare`` are equal, by default the order's identity (``IDENTITY_FIELDS``: seller,
buyer, amount, description, pay method, agent) plus whatever the caller set explicitly. The
existing input is read from the first event of the order's history (``WorkflowExecutionStarted``)
and whether this call created the order from a one-time token in the start memo, so a
concurrent duplicate start is told apart from the original.

Failures map to the typed errors of ``starter/client/errors.py`` by what the SDK carries: RPC
status codes, and for a refused update the ``ApplicationError.type`` the workflow's validator
set (``workflows/rules.py``; docs/http-api.md lists the codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

from pydantic import BaseModel
from temporalio.api.history.v1 import WorkflowExecutionStartedEventAttributes
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runtime.codec import CodecSettings
from starter.client.errors import (
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    TemporalUnavailable,
    VisibilityUnavailable,
)
from workflows.models import (
    DEFAULT_MERCHANT,
    TASK_QUEUE,
    WORKFLOW_TYPE,
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    IpnSignal,
    Model,
    OperatorAction,
    OrderInput,
    OrderView,
    PaymentInfo,
    workflow_id_for,
    workflow_id_prefix,
)
from workflows.pseudonym import search_id_hex_salt
from workflows.search_attributes import (
    COTPAY_ORDER_ID,
    ESCROW_AMOUNT,
    ESCROW_STATUS,
    PAYOUT_NOT_BEFORE,
)
from workflows.summary import summary_for

IDENTITY_FIELDS: frozenset[str] = frozenset(
    {"order_ref", "seller_id", "buyer_id", "amount", "description", "pay_method", "agent_id"}
)
START_TOKEN_MEMO = "startToken"  # noqa: S105 - a memo key, not a secret
DEFAULT_RPC_TIMEOUT = timedelta(seconds=10)
DEFAULT_START_WAIT = timedelta(seconds=30)

_UNAVAILABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)
COTPAY_ID_PATTERN = r"^[A-Za-z0-9+_-]{1,10}$"  # the ids list filters accept
_COTPAY_ID = re.compile(COTPAY_ID_PATTERN)
# A refusal's failure type is a stable code (``invalid_state``), not a Python class name.
_STABLE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,48}$")


class FromEnvironment(Enum):
    READ = "from the environment"


FROM_ENVIRONMENT = FromEnvironment.READ


class StartResult(NamedTuple):
    view: OrderView
    created: bool
    payment: PaymentInfo | None


class OrderSummary(Model):
    """One row of ``list_orders``: what visibility (search attributes) knows, no query."""

    order_ref: str
    workflow_id: str
    status: str | None = None
    run_status: str | None = None
    amount: int | None = None
    cotpay_order_id: int | None = None
    payout_not_before: datetime | None = None
    started_at: datetime
    closed_at: datetime | None = None


def start_search_attributes(order: OrderInput) -> TypedSearchAttributes:
    """Set at start so the order is findable at once; seller and buyer ids are left to the
    workflow, which may pseudonymize them."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ESCROW_STATUS, EscrowStatus.CREATING.value),
            SearchAttributePair(ESCROW_AMOUNT, order.amount),
        ]
    )


def order_summary(execution: WorkflowExecution, merchant: str = DEFAULT_MERCHANT) -> OrderSummary:
    attrs = execution.typed_search_attributes
    workflow_id = execution.id
    return OrderSummary(
        order_ref=workflow_id.removeprefix(workflow_id_prefix(merchant)),
        workflow_id=workflow_id,
        status=attrs.get(ESCROW_STATUS),
        run_status=execution.status.name if execution.status is not None else None,
        amount=attrs.get(ESCROW_AMOUNT),
        cotpay_order_id=attrs.get(COTPAY_ORDER_ID),
        payout_not_before=attrs.get(PAYOUT_NOT_BEFORE),
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


def refusal(failure: BaseException | None, default: str = "invalid_state") -> InvalidState:
    """The ``InvalidState`` of a failed update: its code is the failure's type.

    The workflow refuses with an ``ApplicationError`` whose type is the stable code and whose
    message is ``"<code>: <sentence>"`` (``workflows.rules.Refused``); the sentence is the
    message. Any other failure is ``default`` with the failure's message.
    """
    if isinstance(failure, ApplicationError) and failure.type and _STABLE_CODE.match(failure.type):
        code = failure.type
        return InvalidState(code, failure.message.removeprefix(f"{code}: "))
    if isinstance(failure, FailureError):
        return InvalidState(default, failure.message)
    return InvalidState(default, str(failure) if failure is not None else default)


def _unavailable(err: RPCError) -> bool:
    """Temporal did not answer. A connection broken mid-call (the server was killed) comes as
    ``UNKNOWN`` with the message ``transport error`` (docs/reliability.md)."""
    if err.status == RPCStatusCode.UNKNOWN:
        return "transport error" in err.message
    return err.status in _UNAVAILABLE


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    """A client that cannot (re)connect raises RuntimeError: report Temporal as unavailable."""
    try:
        yield
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        raise TemporalUnavailable("Temporal is unreachable") from exc


class EscrowClient:
    """Typed access to escrow orders over a connected ``temporalio.client.Client``."""

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        rpc_timeout: timedelta = DEFAULT_RPC_TIMEOUT,
        search_salt: str | FromEnvironment | None = FROM_ENVIRONMENT,
    ) -> None:
        """``search_salt``: the salt of pseudonymized ``SellerId``/``BuyerId`` (None: ids in
        clear); by default ``CodecSettings().search_salt_hex()`` (``ESCROW_PSEUDONYMIZE_SEARCH``,
        ``ESCROW_SEARCH_KEY``). New orders carry it; seller/buyer filters are hashed with it."""
        self._client = client
        self._task_queue = task_queue
        self._rpc_timeout = rpc_timeout
        self._search_salt = (
            CodecSettings().search_salt_hex()
            if isinstance(search_salt, FromEnvironment)
            else search_salt
        )

    @property
    def temporal(self) -> Client:
        return self._client

    def _handle(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> WorkflowHandle[Any, Any]:
        """The order's workflow: an order of another merchant is simply not found."""
        return self._client.get_workflow_handle(workflow_id_for(order_ref, merchant))

    # --- start ---------------------------------------------------------------------------

    async def start_order(
        self,
        order: OrderInput,
        *,
        compare: Collection[str] | None = None,
        wait: timedelta = DEFAULT_START_WAIT,
    ) -> StartResult:
        """Start the order (or find it) and return its view with Cotpay's payment data.

        Raises ``OrderConflict`` when ``orderRef`` exists with a different input,
        ``StartTimeout`` when the payment data did not come back within ``wait`` (the order may
        exist: repeat the same call).
        """
        fields = (
            frozenset(compare) if compare is not None else IDENTITY_FIELDS | order.model_fields_set
        )
        if order.search_salt is None and self._search_salt is not None:
            order = order.model_copy(update={"search_salt": self._search_salt})
        async with _reachable():
            return await self._start(order, fields, wait)

    async def _start(
        self, order: OrderInput, fields: frozenset[str], wait: timedelta
    ) -> StartResult:
        existing = await self._started(order.order_ref, order.merchant)
        if existing is not None:
            self._check_same(existing[0], order, fields)
        token = uuid.uuid4().hex
        operation: WithStartWorkflowOperation[Any, OrderView] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            order,
            id=workflow_id_for(order.order_ref, order.merchant),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={START_TOKEN_MEMO: token},
            search_attributes=start_search_attributes(order),
            static_summary=summary_for(order),
            result_type=OrderView,
        )
        payment: PaymentInfo | None = None
        try:
            payment = await self._payment_info(operation, wait)
        except WorkflowAlreadyStartedError:
            pass
        except RPCError as err:
            if _unavailable(err):
                raise TemporalUnavailable("Temporal is unreachable") from err
            if err.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        except WorkflowUpdateFailedError:
            pass
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise StartTimeout(
                f"order {order.order_ref!r}: no payment data within {wait.total_seconds():g}s;"
                " repeat the same request"
            ) from exc
        created = False
        if existing is None:
            started = await self._started(order.order_ref, order.merchant)
            if started is None:
                raise OrderNotFound(order.order_ref)
            created = started[1] == token
            if not created:
                self._check_same(started[0], order, fields)
        view = await self._get(order.order_ref, order.merchant)
        return StartResult(view, created, payment)

    async def _payment_info(
        self, operation: WithStartWorkflowOperation[Any, OrderView], wait: timedelta
    ) -> PaymentInfo:
        try:
            return await asyncio.wait_for(
                self._client.execute_update_with_start_workflow(
                    "payment_info", start_workflow_operation=operation, result_type=PaymentInfo
                ),
                timeout=wait.total_seconds(),
            )
        except BaseException:
            await _consume_start_error(operation)
            raise

    @staticmethod
    def _check_same(existing: OrderInput, order: OrderInput, fields: frozenset[str]) -> None:
        differing = [
            OrderInput.model_fields[name].alias or name
            for name in sorted(fields)
            if name in OrderInput.model_fields and getattr(existing, name) != getattr(order, name)
        ]
        if differing:
            raise OrderConflict(order.order_ref, differing)

    async def _started(
        self, order_ref: str, merchant: str = DEFAULT_MERCHANT
    ) -> tuple[OrderInput, str | None] | None:
        """The input and start token of the order's current run, or None when it never existed."""
        handle = self._handle(order_ref, merchant)
        attrs: WorkflowExecutionStartedEventAttributes | None = None
        try:
            async for event in handle.fetch_history_events(
                page_size=1, rpc_timeout=self._rpc_timeout
            ):
                if event.HasField("workflow_execution_started_event_attributes"):
                    attrs = event.workflow_execution_started_event_attributes
                break
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            if _unavailable(err):
                raise TemporalUnavailable("Temporal is unreachable") from err
            raise
        if attrs is None:
            return None
        converter = self._client.data_converter
        [order] = await converter.decode(list(attrs.input.payloads), [OrderInput])
        token: str | None = None
        if START_TOKEN_MEMO in attrs.memo.fields:
            [token] = await converter.decode([attrs.memo.fields[START_TOKEN_MEMO]], [str])
        if not isinstance(order, OrderInput):
            order = OrderInput.model_validate(order)
        return order, token

    # --- read ----------------------------------------------------------------------------

    async def get_order(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> OrderView:
        async with _reachable():
            return await self._get(order_ref, merchant)

    async def exists(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> bool:
        """Whether Temporal still has the order's workflow, running or closed (until the
        namespace retention deletes it). Raises ``TemporalUnavailable``."""
        try:
            async with _reachable():
                await self._handle(order_ref, merchant).describe(rpc_timeout=self._rpc_timeout)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            if _unavailable(err):
                raise TemporalUnavailable("Temporal is unreachable") from err
            raise
        return True

    async def _get(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> OrderView:
        try:
            view = await asyncio.wait_for(
                self._handle(order_ref, merchant).query(
                    "status", result_type=OrderView, rpc_timeout=self._rpc_timeout
                ),
                timeout=self._rpc_timeout.total_seconds() + 1,
            )
        except TimeoutError as err:
            raise TemporalUnavailable(f"order {order_ref!r}: no answer in time") from err
        except RPCError as err:
            raise self._rpc_error(order_ref, err) from err
        except WorkflowQueryFailedError as err:
            raise TemporalUnavailable(f"order {order_ref!r}: status query failed") from err
        return _view(view)

    async def list_orders(
        self,
        status: EscrowStatus | None = None,
        *,
        seller_id: str | None = None,
        buyer_id: str | None = None,
        limit: int = 100,
        merchant: str = DEFAULT_MERCHANT,
    ) -> list[OrderSummary]:
        """``merchant``'s orders from visibility, newest first, filtered on ``EscrowStatus``,
        ``SellerId``, ``BuyerId``. Raises ValueError for an id that is not a Cotpay id."""
        query = (
            f'WorkflowType = "{WORKFLOW_TYPE}"'
            f' AND WorkflowId STARTS_WITH "{workflow_id_prefix(merchant)}"'
        )
        if status is not None:
            query += f' AND EscrowStatus = "{EscrowStatus(status).value}"'
        for attribute, cotpay_id in (("SellerId", seller_id), ("BuyerId", buyer_id)):
            if cotpay_id is not None:
                query += f' AND {attribute} = "{self._search_value(cotpay_id)}"'
        rows: list[OrderSummary] = []
        try:
            async with _reachable():
                rows = [
                    order_summary(execution, merchant)
                    async for execution in self._client.list_workflows(
                        query, limit=limit, rpc_timeout=self._rpc_timeout
                    )
                ]
        except RPCError as err:
            if _unavailable(err):
                raise TemporalUnavailable("Temporal is unreachable") from err
            if err.status in (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.INVALID_ARGUMENT):
                raise VisibilityUnavailable(
                    "this Temporal server cannot list orders by EscrowStatus"
                ) from err
            raise
        return rows

    def _search_value(self, cotpay_id: str) -> str:
        if not _COTPAY_ID.match(cotpay_id):
            raise ValueError("a Cotpay id is 1-10 letters, digits, '+', '_' or '-'")
        if self._search_salt is None:
            return cotpay_id
        return search_id_hex_salt(cotpay_id, self._search_salt)

    async def healthy(self, within: timedelta = timedelta(seconds=3)) -> bool:
        """Whether Temporal answers a cheap RPC within ``within``."""
        try:
            await asyncio.wait_for(
                self._client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), retry=False, timeout=within
                ),
                timeout=within.total_seconds() + 1,
            )
        except (RPCError, TimeoutError, RuntimeError):
            return False
        return True

    # --- messages ------------------------------------------------------------------------

    async def confirm_delivery(
        self,
        order_ref: str,
        request: DeliveryConfirmation | None = None,
        *,
        merchant: str = DEFAULT_MERCHANT,
    ) -> OrderView:
        return await self._update(
            order_ref, "confirm_delivery", request or DeliveryConfirmation(), _delivered, merchant
        )

    async def open_dispute(
        self,
        order_ref: str,
        request: DisputeRequest | None = None,
        *,
        merchant: str = DEFAULT_MERCHANT,
    ) -> OrderView:
        return await self._update(
            order_ref, "open_dispute", request or DisputeRequest(), _disputed, merchant
        )

    async def cancel(
        self,
        order_ref: str,
        request: CancelRequest | None = None,
        *,
        merchant: str = DEFAULT_MERCHANT,
    ) -> OrderView:
        return await self._update(
            order_ref, "cancel", request or CancelRequest(), _cancelled, merchant
        )

    async def operator_action(
        self, order_ref: str, action: OperatorAction, *, merchant: str = DEFAULT_MERCHANT
    ) -> OrderView:
        return await self._update(order_ref, "operator_action", action, _never, merchant)

    async def send_ipn(
        self, order_ref: str, ipn: IpnSignal, *, merchant: str = DEFAULT_MERCHANT
    ) -> None:
        """Signal an IPN; returns once Temporal has accepted it.

        Raises ``OrderNotFound``, ``OrderClosed`` (the workflow finished) or
        ``TemporalUnavailable``.
        """
        if ipn.received_at is None:
            ipn = ipn.model_copy(update={"received_at": datetime.now(UTC)})
        async with _reachable():
            try:
                await asyncio.wait_for(
                    self._handle(order_ref, merchant).signal(
                        "ipn", ipn, rpc_timeout=self._rpc_timeout
                    ),
                    timeout=self._rpc_timeout.total_seconds(),
                )
            except TimeoutError as err:
                raise TemporalUnavailable("Temporal did not take the signal in time") from err
            except RPCError as err:
                raise await self._closed_or(order_ref, err, merchant) from err

    async def _update(
        self,
        order_ref: str,
        name: str,
        arg: BaseModel,
        already: Any,
        merchant: str = DEFAULT_MERCHANT,
    ) -> OrderView:
        async with _reachable():
            return await self._execute(order_ref, name, arg, already, merchant)

    async def _execute(
        self,
        order_ref: str,
        name: str,
        arg: BaseModel,
        already: Any,
        merchant: str = DEFAULT_MERCHANT,
    ) -> OrderView:
        try:
            result = await self._handle(order_ref, merchant).execute_update(
                name, arg, result_type=OrderView, rpc_timeout=self._rpc_timeout
            )
        except WorkflowUpdateFailedError as err:
            raise refusal(err.cause) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            raise TemporalUnavailable(f"order {order_ref!r}: {name} timed out") from err
        except RPCError as err:
            failure = await self._closed_or(order_ref, err, merchant)
            if not isinstance(failure, OrderClosed):
                raise failure from err
            view = await self._get(order_ref, merchant)
            if already(view):
                return view
            raise InvalidState(
                "order_closed",
                f"order {order_ref!r} is finished ({view.status.value})",
                view=view,
            ) from err
        return _view(result)

    async def _closed_or(
        self, order_ref: str, err: RPCError, merchant: str = DEFAULT_MERCHANT
    ) -> Exception:
        """Turn a signal/update RPC failure into OrderClosed, OrderNotFound or Unavailable."""
        if err.status != RPCStatusCode.NOT_FOUND:
            return self._rpc_error(order_ref, err)
        try:
            description = await self._handle(order_ref, merchant).describe(
                rpc_timeout=self._rpc_timeout
            )
        except RPCError as inner:
            return self._rpc_error(order_ref, inner)
        if description.status != WorkflowExecutionStatus.RUNNING:
            return OrderClosed(order_ref)
        return TemporalUnavailable(f"order {order_ref!r}: {err.message}")

    @staticmethod
    def _rpc_error(order_ref: str, err: RPCError) -> Exception:
        if err.status == RPCStatusCode.NOT_FOUND:
            return OrderNotFound(order_ref)
        if _unavailable(err):
            return TemporalUnavailable("Temporal is unreachable")
        return err


async def _consume_start_error(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """The SDK also stores a failed start in the operation (``workflow_handle()``); read it so
    asyncio does not log "Future exception was never retrieved" at garbage collection.

    By the time the update call has failed, the SDK has set the start's outcome or never will
    (the call was cancelled before the start answered); the latter is not waited for.
    """
    waiter = asyncio.ensure_future(operation.workflow_handle())
    await asyncio.sleep(0)
    if not waiter.done():
        waiter.cancel()
    with contextlib.suppress(BaseException):
        await waiter


def _view(value: Any) -> OrderView:
    return value if isinstance(value, OrderView) else OrderView.model_validate(value)


def _delivered(view: OrderView) -> bool:
    return view.delivered_at is not None


def _disputed(view: OrderView) -> bool:
    return view.status in (EscrowStatus.RETURN_REQUESTED, EscrowStatus.REFUNDED)


def _cancelled(view: OrderView) -> bool:
    return view.status == EscrowStatus.CANCELLED


def _never(view: OrderView) -> bool:
    return False
