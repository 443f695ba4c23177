"""The message catalogue: the service's texts in English and Vietnamese (docs/http-api.md,
"Language").

The workflow records English, as it always has (deterministic, nothing in its history changes).
The edge shows a text in the reader's language: the gateway follows ``Accept-Language``
(``negotiate``), and any front door can call the same functions. A text is found here by a
stable key: its *context* (``wait`` for a ``waitingFor`` line, a timeline event's ``kind``,
``reason`` for an attention reason, ``error:<code>`` for an error's message) and the English
template it matches in that context. The template's ``{slots}`` capture the variable parts, which
the Vietnamese template puts back (some translated again: a reason inside a line). A text that
matches no template is shown as recorded, so a new English text is never lost, only untranslated;
``tests/unit/test_i18n.py`` fails when a text the state machine, the rules or the gateway produce
has no template here.

Change a text in ``workflows/state_machine.py``, ``workflows/rules.py``, ``starter/client`` or
``starter/gateway`` together with its template here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Lang = Literal["en", "vi"]
DEFAULT: Lang = "en"
SUPPORTED: tuple[Lang, ...] = ("en", "vi")

# What each slot may hold; a slot not listed holds any text (shortest match).
_SLOTS: dict[str, str] = {
    "status": r"[A-Z_]+",
    "status_again": r"[A-Z_]+",
    "ipn_status": r"[A-Z_]+",
    "step": r"[a-z_]+",
    "type": r"[A-Za-z_]+",
    "code": r"\d+",
    "n": r"\d+",
    "id": r"-?\d+",
    "name": r"[a-z_]+",
    "code_text": r"[a-z_]+",
    "code_again": r"[a-z_]+",
    "action": r"[a-z]+",
    "ref": r"'[^']*'",
    "amount": r"[\d,]+",
    "role": r"[a-z]+",
    "bucket": r"[a-z_]+",
    "since": r"\d{4}-\d\d-\d\d \d\d:\d\d ICT",
    "until": r"\d{4}-\d\d-\d\d \d\d:\d\d ICT",
}
_SLOT = re.compile(r"\{([a-z_]+)\}")

# Cotpay's step names (workflows/calls.py) and failure types (cotpay/codes.py), in Vietnamese.
STEPS_VI: dict[str, str] = {
    "customer_id": "kiểm tra khách hàng",
    "sign_up": "đăng ký người mua",
    "create": "tạo đơn",
    "verify": "xác nhận đơn",
    "payment": "chi trả",
    "return": "yêu cầu hoàn hàng",
}
FAILURES_VI: dict[str, str] = {
    "SellerNotFound": "không tìm thấy người bán",
    "BuyerNotFound": "không tìm thấy người mua",
    "OrderCodeExists": "mã đơn đã tồn tại",
    "ValidationFailed": "dữ liệu không hợp lệ",
    "OrderNotFound": "không tìm thấy đơn hàng",
    "PayoutFailed": "chi trả thất bại",
    "WalletNotLinked": "tài khoản chưa liên kết ví PayME",
    "BankNotLinked": "tài khoản nhận chưa liên kết ngân hàng",
    "PayoutTooEarly": "chỉ được chi trả sau 16:00 ngày T+1",
    "InformationMismatch": "thông tin không khớp",
    "TokenMissing": "thiếu token",
    "OrderBusy": "đơn đang trong một giao dịch",
    "UnknownCode": "mã lỗi không có trong tài liệu",
    "Protocol": "câu trả lời không đọc được",
    "InvalidRequest": "yêu cầu không hợp lệ",
    "Timeout": "hết thời gian chờ",
}


@dataclass(frozen=True)
class Entry:
    """One text: its stable key, the English template the workflow or service writes, the
    Vietnamese one, and in which context each slot is translated again (``nested``)."""

    key: str
    en: str
    vi: str
    nested: Mapping[str, str] = field(default_factory=dict)

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.en)


_COMPILED: dict[str, re.Pattern[str]] = {}


def _compile(template: str) -> re.Pattern[str]:
    compiled = _COMPILED.get(template)
    if compiled is None:
        parts: list[str] = []
        last = 0
        for slot in _SLOT.finditer(template):
            parts.append(re.escape(template[last : slot.start()]))
            name = slot.group(1)
            parts.append(f"(?P<{name}>{_SLOTS.get(name, '.*?')})")
            last = slot.end()
        parts.append(re.escape(template[last:]))
        compiled = _COMPILED[template] = re.compile("".join(parts), re.DOTALL)
    return compiled


def _e(key: str, en: str, vi: str, **nested: str) -> Entry:
    return Entry(key, en, vi, nested)


AFTER_CLOSE_VI = (
    "IPN HOLDING đến sau lúc này chỉ được ghi vào log của cổng (ipn.after_close): "
    "hãy kiểm tra trên Cotpay"
)
_REASONS = (
    _e(
        "reason.ipn_amount_and_order",
        "{ipn} IPN with amount {got} VND where the order is for {want} VND and Cotpay order"
        " {got_id} where the order is {want_id}: not trusted, check the payment at Cotpay",
        "IPN {ipn} có số tiền {got} VND trong khi đơn là {want} VND và đơn Cotpay {got_id}"
        " trong khi đơn là {want_id}: không đáng tin, hãy kiểm tra khoản thanh toán trên Cotpay",
    ),
    _e(
        "reason.ipn_amount",
        "{ipn} IPN with amount {got} VND where the order is for {want} VND: not trusted, check"
        " the payment at Cotpay",
        "IPN {ipn} có số tiền {got} VND trong khi đơn là {want} VND:"
        " không đáng tin, hãy kiểm tra khoản thanh toán trên Cotpay",
    ),
    _e(
        "reason.ipn_order",
        "{ipn} IPN with Cotpay order {got} where the order is {want}: not trusted, check the"
        " payment at Cotpay",
        "IPN {ipn} của đơn Cotpay {got} trong khi đơn là {want}:"
        " không đáng tin, hãy kiểm tra khoản thanh toán trên Cotpay",
    ),
    _e(
        "reason.delivery_deadline",
        "no delivery confirmation within the delivery deadline",
        "không có xác nhận giao hàng trong thời hạn giao hàng",
    ),
    _e(
        "reason.payout_failed_after_paid",
        "Cotpay reported PAYOUT_FAILED after paying out",
        "Cotpay báo PAYOUT_FAILED sau khi đã chi trả",
    ),
    _e("reason.return_rejected", "the seller rejected the return", "người bán từ chối hoàn hàng"),
    _e(
        "reason.return_window",
        "no seller decision within the return window",
        "người bán không quyết định trong thời hạn hoàn hàng",
    ),
    _e(
        "reason.timeout",
        "{step}: Timeout: no answer within {duration} of retries{rest}",
        "{step}: hết thời gian chờ: không có câu trả lời sau {duration} thử lại{rest}",
        rest="timeout_rest",
    ),
    _e(
        "reason.failure_with_code",
        "{step}: {type} ({code}): {message}",
        "{step}: {type} (mã {code}): {message}",
    ),
    _e("reason.failure", "{step}: {type}: {message}", "{step}: {type}: {message}"),
    _e("reason.unknown", "unknown", "không rõ"),
)
_TIMEOUT_REST = (
    _e("timeout_rest.none", "", ""),
    _e("timeout_rest.last", "; last error: {message}", "; lỗi cuối: {message}"),
)
_WAITS = (
    _e("wait.creating", "Creating the order on Cotpay", "Đang tạo đơn trên Cotpay"),
    _e("wait.payment", "Waiting for buyer payment", "Chờ người mua thanh toán"),
    _e(
        "wait.linger",
        "{status}; watching for a late payment",
        "{status}; theo dõi khoản thanh toán đến muộn",
    ),
    _e(
        "wait.held",
        "Money held; waiting for delivery confirmation",
        "Tiền đang được giữ; chờ xác nhận giao hàng",
    ),
    _e(
        "wait.delivered",
        "Delivered; waiting for the payout slot",
        "Đã giao hàng; chờ đến thời điểm chi trả",
    ),
    _e("wait.slot", "Waiting for the payout slot", "Chờ đến thời điểm chi trả"),
    _e("wait.paying", "Paying out to the seller", "Đang chi trả cho người bán"),
    _e(
        "wait.paid",
        "Paid out; waiting for Cotpay's confirmation",
        "Đã chi trả; chờ Cotpay xác nhận",
    ),
    _e("wait.return_call", "Requesting a return", "Đang yêu cầu hoàn hàng"),
    _e(
        "wait.return_decision",
        "Waiting for the seller to decide the return",
        "Chờ người bán quyết định việc hoàn hàng",
    ),
    _e(
        "wait.attention",
        "Needs an operator: {reason}",
        "Cần người vận hành xử lý: {reason}",
        reason="reason",
    ),
    _e(
        "wait.finished_after_close",
        "Finished: {status} (a HOLDING IPN after this reaches only the gateway log "
        "(ipn.after_close): check Cotpay)",
        f"Đã kết thúc: {{status}} ({AFTER_CLOSE_VI})",
    ),
    _e("wait.finished", "Finished: {status}", "Đã kết thúc: {status}"),
)
_STATUS_DETAILS = (
    _e("status.awaiting_payment", "waiting for the buyer to pay", "chờ người mua thanh toán"),
    _e(
        "status.held",
        "the buyer paid; Cotpay holds the money",
        "người mua đã thanh toán; Cotpay đang giữ tiền",
    ),
    _e(
        "status.expired",
        "no payment within the payment window",
        "không có thanh toán trong thời hạn thanh toán",
    ),
    _e(
        "status.cancelled_creating",
        "cancelled while the order was being created",
        "đã hủy trong lúc đang tạo đơn",
    ),
    _e(
        "status.cancelled_failed_creation",
        "cancelled; creation had failed: {reason}",
        "đã hủy; việc tạo đơn đã thất bại: {reason}",
        reason="reason",
    ),
    _e(
        "status.late_payment_return",
        "returning a late payment",
        "hoàn lại khoản thanh toán đến muộn",
    ),
    _e("status.auto_release", "automatic release", "tự động chi trả"),
    _e("status.slot_reached", "payout slot reached", "đã đến thời điểm chi trả"),
    _e(
        "status.paid_out",
        "Cotpay paid the seller (10100)",
        "Cotpay đã chi trả cho người bán (10100)",
    ),
    _e("status.refunded", "the buyer was refunded", "người mua đã được hoàn tiền"),
    _e(
        "status.late_outcome",
        "{status} IPN while waiting for an operator",
        "IPN {status} đến trong lúc chờ người vận hành",
    ),
    _e(
        "status.ended_by_ipn",
        "{status} IPN already recorded: no money call",
        "đã nhận IPN {status}: không gọi lệnh chuyển tiền nữa",
    ),
    _e("status.delivered", "delivery confirmed", "đã xác nhận giao hàng"),
    _e(
        "status.dispute",
        "dispute opened: requesting a return",
        "đã mở khiếu nại: yêu cầu hoàn hàng",
    ),
    _e("status.cancelled_shop", "cancelled by the shop", "cửa hàng đã hủy đơn"),
    _e(
        "status.retry_delivery",
        "operator retry: waiting for delivery again",
        "người vận hành thử lại: chờ giao hàng lần nữa",
    ),
    _e("status.retry", "operator retry", "người vận hành thử lại"),
    _e("status.release", "operator release", "người vận hành cho chi trả"),
    _e(
        "status.refund",
        "operator refund: requesting a return",
        "người vận hành hoàn tiền: yêu cầu hoàn hàng",
    ),
    _e("status.cancelled_operator", "cancelled by an operator", "người vận hành đã hủy đơn"),
    *_REASONS,
)
# Refusals of the message rules (workflows/rules.py), by stable code.
_REFUSALS: dict[str, tuple[Entry, ...]] = {
    "invalid_state": (
        _e(
            "refusal.delivery",
            "cannot confirm delivery of an order in {status}",
            "không thể xác nhận giao hàng cho đơn đang ở trạng thái {status}",
        ),
        _e(
            "refusal.dispute",
            "cannot open a dispute on an order in {status}",
            "không thể mở khiếu nại cho đơn đang ở trạng thái {status}",
        ),
        _e(
            "refusal.cancel",
            "cannot cancel an order in {status}",
            "không thể hủy đơn đang ở trạng thái {status}",
        ),
        _e(
            "refusal.operator",
            "{action}: the order is {status}, not NEEDS_ATTENTION",
            "{action}: đơn đang ở trạng thái {status}, không phải NEEDS_ATTENTION",
        ),
    ),
    "not_held": (
        _e(
            "refusal.not_held_dispute",
            "no money is held yet; cancel the order instead",
            "chưa có tiền được giữ; hãy hủy đơn",
        ),
        _e(
            "refusal.not_held",
            "{action}: no money is held for this order",
            "{action}: không có tiền được giữ cho đơn này",
        ),
    ),
    "return_pending": (
        _e(
            "refusal.return_pending",
            "release: a return request may be pending at Cotpay; wait for the seller's decision"
            " (REFUNDED or RETURN_REJECTED IPN) or retry the return request",
            "release: có thể còn một yêu cầu hoàn hàng đang chờ ở Cotpay; hãy chờ người bán quyết"
            " định (IPN REFUNDED hoặc RETURN_REJECTED) hoặc thử lại yêu cầu hoàn hàng",
        ),
    ),
    "payout_in_doubt": (
        _e(
            "refusal.payout_in_doubt",
            "refund: Cotpay gave no definite answer to the payout call; retry it first",
            "refund: Cotpay chưa trả lời dứt khoát lệnh chi trả; hãy thử lại lệnh đó trước",
        ),
    ),
    "money_held": (
        _e(
            "refusal.money_held",
            "cancel: money is held; use refund or release",
            "cancel: tiền đang được giữ; hãy dùng refund hoặc release",
        ),
        _e(
            "refusal.money_held_holding",
            "cancel: Cotpay reported the money held (HOLDING IPN); use refund or release",
            "cancel: Cotpay đã báo tiền được giữ (IPN HOLDING); hãy dùng refund hoặc release",
        ),
    ),
    "money_moved": (
        _e(
            "refusal.money_moved",
            "{action}: Cotpay reported {status} for this order; it ends {status_again}",
            "{action}: Cotpay đã báo {status} cho đơn này; đơn kết thúc ở {status_again}",
        ),
    ),
}
_EVENTS: dict[str, tuple[Entry, ...]] = {
    "started": (
        _e(
            "event.started",
            "Escrow {ref_text}: {amount} VND, seller {seller}, {method}, payout rule {rule}",
            "Ký quỹ {ref_text}: {amount} VND, người bán {seller}, {method}, quy tắc chi trả {rule}",
        ),
    ),
    "buyer_signed_up": (
        _e(
            "event.buyer_signed_up", "buyer signed up on Cotpay", "đã đăng ký người mua trên Cotpay"
        ),
    ),
    "buyer_exists": (
        _e(
            "event.buyer_exists",
            "sign-up refused, but the buyer exists on Cotpay",
            "đăng ký bị từ chối, nhưng người mua đã có trên Cotpay",
        ),
    ),
    "order_created": (
        _e("event.order_created", "order created", "đã tạo đơn"),
        _e(
            "event.order_adopted",
            "adopted the order created by an earlier attempt",
            "dùng lại đơn đã được tạo ở lần thử trước",
        ),
    ),
    "order_verified": (
        _e(
            "event.order_verified",
            "payment data ready ({method})",
            "dữ liệu thanh toán đã sẵn sàng ({method})",
        ),
    ),
    "watch_ended": (
        _e(
            "event.watch_ended",
            "no HOLDING IPN within the grace period; a HOLDING IPN after this reaches only the"
            " gateway log (ipn.after_close): check Cotpay",
            f"không có IPN HOLDING trong thời gian theo dõi thêm; {AFTER_CLOSE_VI}",
        ),
    ),
    "late_payment": (
        _e(
            "event.late_payment",
            "money held after the order was {status}",
            "tiền được giữ sau khi đơn đã {status}",
        ),
    ),
    "auto_release": (
        _e(
            "event.auto_release",
            "delivery deadline passed; releasing automatically",
            "đã quá hạn giao hàng; tự động chi trả",
        ),
    ),
    "payout_too_early": (
        _e("event.payout_too_early", "11100: trying again at {time}", "11100: thử lại lúc {time}"),
    ),
    "return_requested": (
        _e(
            "event.return_requested",
            "Cotpay accepted the return request",
            "Cotpay đã nhận yêu cầu hoàn hàng",
        ),
    ),
    "signal_rejected": (
        _e(  # the refusal's text as the signal handler records it: its code comes twice
            "event.signal_rejected_recorded",
            "{name}: {code_text}: {code_again}: {refusal}",
            "{name}: {code_text}: {refusal}",
            refusal="refusal",
        ),
        _e(
            "event.signal_rejected",
            "{name}: {code_text}: {refusal}",
            "{name}: {code_text}: {refusal}",
            refusal="refusal",
        ),
    ),
    "operator_action": (
        _e(
            "event.operator_action",
            "{action} by {operator}: {note}",
            "{action} bởi {operator}: {note}",
        ),
    ),
    "ipn_ignored": (
        _e(
            "event.ipn_before_order",
            "IPN before this order's Cotpay order exists",
            "IPN đến trước khi đơn này có đơn Cotpay",
        ),
        _e(
            "event.ipn_other_order",
            "IPN for another Cotpay order {id}",
            "IPN của một đơn Cotpay khác ({id})",
        ),
    ),
    "ipn_unknown": (
        _e("event.ipn_unknown", "{step} {ipn_text} (unknown)", "{step} {ipn_text} (không rõ)"),
    ),
    "rejection_in_flight": (
        _e(
            "event.rejection_in_flight",
            "RETURN_REJECTED arrived while the return request was in flight: it may answer an"
            " earlier attempt, and the request may be open at Cotpay again",
            "RETURN_REJECTED đến trong lúc yêu cầu hoàn hàng đang được gửi: có thể đó là trả lời"
            " cho một lần gửi trước, và yêu cầu có thể lại đang mở ở Cotpay",
        ),
    ),
    "ipn_early": (
        _e(
            "event.ipn_early_payout",
            "{step} {ipn_status} IPN before any payout call: not taken as a payout's outcome",
            "IPN {ipn_status} ({step}) đến trước mọi lần gọi chi trả: không được coi là kết quả"
            " của một lần chi trả",
        ),
        _e(
            "event.ipn_early_return",
            "{step} {ipn_status} IPN before any return request: not taken as a return's outcome",
            "IPN {ipn_status} ({step}) đến trước mọi yêu cầu hoàn hàng: không được coi là kết quả"
            " của một yêu cầu hoàn hàng",
        ),
    ),
    "ipn_stale": (
        _e(
            "event.ipn_stale",
            "{step} {ipn_text} (earlier call)",
            "{step} {ipn_text} (trả lời một lần gọi trước)",
        ),
    ),
    "ipn_mismatch": (
        _e(
            "event.ipn_mismatch_amount_and_order",
            "{step} {ipn} IPN with amount {got} VND where the order is for {want} VND and Cotpay"
            " order {got_id} where the order is {want_id}",
            "{step} IPN {ipn} có số tiền {got} VND trong khi đơn là {want} VND và đơn Cotpay"
            " {got_id} trong khi đơn là {want_id}",
        ),
        _e(
            "event.ipn_mismatch_amount",
            "{step} {ipn} IPN with amount {got} VND where the order is for {want} VND",
            "{step} IPN {ipn} có số tiền {got} VND trong khi đơn là {want} VND",
        ),
        _e(
            "event.ipn_mismatch_order",
            "{step} {ipn} IPN with Cotpay order {got} where the order is {want}",
            "{step} IPN {ipn} của đơn Cotpay {got} trong khi đơn là {want}",
        ),
    ),
    "status": _STATUS_DETAILS,
    "activity_failed": _REASONS,
    "evidence": _REASONS,
}
_ERRORS: dict[str, tuple[Entry, ...]] = {
    **_REFUSALS,
    "order_not_found": (_e("error.order_not_found", "no order {ref}", "không có đơn hàng {ref}"),),
    "order_conflict": (
        _e(
            "error.order_conflict",
            "order {ref} already exists with different {fields}",
            "đơn {ref} đã tồn tại với {fields} khác",
        ),
    ),
    "order_closed": (
        _e(
            "error.order_closed_status",
            "order {ref} is finished ({status})",
            "đơn {ref} đã kết thúc ({status})",
        ),
        _e("error.order_closed", "order {ref} is finished", "đơn {ref} đã kết thúc"),
    ),
    "temporal_unavailable": (
        _e("error.temporal_unreachable", "Temporal is unreachable", "không kết nối được Temporal"),
        _e(
            "error.signal_timeout",
            "Temporal did not take the signal in time",
            "Temporal không nhận tín hiệu kịp thời",
        ),
        _e(
            "error.update_timeout",
            "order {ref}: {name} timed out",
            "đơn {ref}: {name} quá thời gian chờ",
        ),
        _e(
            "error.query_timeout",
            "order {ref}: no answer in time",
            "đơn {ref}: không có câu trả lời kịp thời",
        ),
        _e(
            "error.query_failed",
            "order {ref}: status query failed",
            "đơn {ref}: truy vấn trạng thái thất bại",
        ),
        _e("error.order_rpc", "order {ref}: {message}", "đơn {ref}: {message}"),
    ),
    "start_timeout": (
        _e(
            "error.start_timeout",
            "order {ref}: no payment data within {seconds}s; repeat the same request",
            "đơn {ref}: chưa có dữ liệu thanh toán sau {seconds} giây; hãy gửi lại đúng yêu cầu đó",
        ),
    ),
    "visibility_unavailable": (
        _e(
            "error.visibility",
            "this Temporal server cannot list orders by EscrowStatus",
            "máy chủ Temporal này không liệt kê được đơn theo EscrowStatus",
        ),
    ),
    "unauthorized": (
        _e(
            "error.unauthorized",
            "missing or wrong API key (Authorization: Bearer <key>)",
            "thiếu hoặc sai API key (Authorization: Bearer <key>)",
        ),
        _e("error.unauthorized_short", "missing or wrong API key", "thiếu hoặc sai API key"),
    ),
    "forbidden": (
        _e(
            "error.forbidden",
            "this route needs a {role} key",
            "đường dẫn này cần một API key quyền {role}",
        ),
    ),
    "no_access_rule": (
        _e(
            "error.no_access_rule",
            "this route declares no access rule",
            "đường dẫn này chưa khai báo quy tắc truy cập",
        ),
    ),
    "rate_limited": (
        _e(
            "error.rate_limited",
            "too many requests ({bucket}); retry in {n} s",
            "quá nhiều yêu cầu ({bucket}); hãy thử lại sau {n} giây",
        ),
    ),
    "body_too_large": (
        _e(
            "error.body_too_large",
            "request bodies are limited to {n} bytes",
            "thân yêu cầu tối đa {n} byte",
        ),
    ),
    "invalid_request": (
        _e(
            "error.invalid_request",
            "the request is not valid ({n} problem(s))",
            "yêu cầu không hợp lệ ({n} lỗi)",
        ),
        _e(
            "error.content_length",
            "bad Content-Length header",
            "header Content-Length không hợp lệ",
        ),
    ),
    "cotpay_refused": _REASONS,
    "order_failed": (
        _e("error.order_failed", "the order could not be created", "không tạo được đơn"),
        *_REASONS,
    ),
    "not_found": (
        _e("error.not_found", "Not Found", "không tìm thấy"),
        _e("error.no_ipn_endpoint", "no such IPN endpoint", "không có địa chỉ IPN này"),
    ),
    "method_not_allowed": (
        _e("error.method_not_allowed", "Method Not Allowed", "phương thức không được phép"),
    ),
    "internal_error": (_e("error.internal", "internal error", "lỗi nội bộ"),),
    "bad_signature": (
        _e(
            "error.bad_signature",
            "the IPN signature does not match",
            "chữ ký IPN không khớp",
        ),
    ),
}
CONTEXTS: dict[str, tuple[Entry, ...]] = {
    "wait": _WAITS,
    "reason": _REASONS,
    "timeout_rest": _TIMEOUT_REST,
    "refusal": tuple(entry for entries in _REFUSALS.values() for entry in entries),
    **{f"event:{kind}": entries for kind, entries in _EVENTS.items()},
    **{f"error:{code}": entries for code, entries in _ERRORS.items()},
}

# Slots whose value is shown in Vietnamese by a rule rather than a template.
_VALUES_VI: dict[str, Callable[[str], str]] = {
    "step": lambda step: STEPS_VI.get(step, step),
    "type": lambda kind: FAILURES_VI.get(kind, kind),
    "amount": lambda amount: amount.replace(",", "."),
}


def negotiate(accept_language: str | None) -> Lang:
    """The best supported language of an ``Accept-Language`` header (RFC 9110 q-values);
    English when the header is missing or names nothing we have."""
    best: Lang = DEFAULT
    best_q = 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for lang in SUPPORTED:
            if primary == lang and q > best_q and q > 0:
                best, best_q = lang, q - position * 1e-6
    return best


def key_of(context: str, text: str) -> tuple[Entry, dict[str, str]] | None:
    """The catalogue entry an English text of ``context`` matches, and its slot values."""
    for entry in CONTEXTS.get(context, ()):
        match = entry.pattern.fullmatch(text)
        if match is not None:
            return entry, match.groupdict()
    return None


def translate(context: str, text: str, lang: Lang) -> str:
    """``text`` (English, as recorded) in ``lang``; unchanged when no template matches."""
    if lang == "en" or not text:
        return text
    found = key_of(context, text)
    if found is None:
        return text
    entry, values = found
    shown = {}
    for name, value in values.items():
        if name in entry.nested:
            shown[name] = translate(entry.nested[name], value, lang)
        elif name in _VALUES_VI:
            shown[name] = _VALUES_VI[name](value)
        else:
            shown[name] = value
    return entry.vi.format(**shown)


_SUFFIX = re.compile(
    r"^(?P<head>.*?) since (?P<since>\d{4}-\d\d-\d\d \d\d:\d\d ICT)"
    r"(?: \(until (?P<until>\d{4}-\d\d-\d\d \d\d:\d\d ICT)\))?$",
    re.DOTALL,
)


def waiting_for(line: str, lang: Lang) -> str:
    """A ``waitingFor`` line (``<what> since <time> (until <time>)``) in ``lang``."""
    if lang == "en" or not line:
        return line
    parts = _SUFFIX.match(line)
    if parts is None:
        return translate("wait", line, lang)
    text = f"{translate('wait', parts['head'], lang)} từ {parts['since']}"
    if parts["until"]:
        text += f" (đến {parts['until']})"
    return text


def timeline_detail(kind: str, detail: str, lang: Lang) -> str:
    return translate(f"event:{kind}", detail, lang)


def error_message(code: str, message: str, lang: Lang) -> str:
    return translate(f"error:{code}", message, lang)


def localize_view(view: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """An order view (camelCase JSON) with its texts in ``lang``: ``waitingFor``, each timeline
    entry's ``detail`` and the attention ``reason``. Codes, statuses and data stay as they are."""
    if lang == "en":
        return view
    out = dict(view)
    if isinstance(out.get("waitingFor"), str):
        out["waitingFor"] = waiting_for(out["waitingFor"], lang)
    attention = out.get("attention")
    if isinstance(attention, dict) and isinstance(attention.get("reason"), str):
        out["attention"] = {**attention, "reason": translate("reason", attention["reason"], lang)}
    timeline = out.get("timeline")
    if isinstance(timeline, list):
        out["timeline"] = [_localize_event(event, lang) for event in timeline]
    return out


def _localize_event(event: Any, lang: Lang) -> Any:
    if not isinstance(event, dict) or not isinstance(event.get("detail"), str):
        return event
    return {**event, "detail": timeline_detail(str(event.get("kind")), event["detail"], lang)}


def localize_body(body: Any, lang: Lang) -> Any:
    """A JSON answer of the gateway in ``lang``: an order view, an error (with its ``order``),
    or anything else unchanged."""
    if lang == "en" or not isinstance(body, dict):
        return body
    if isinstance(body.get("error"), str) and isinstance(body.get("message"), str):
        out = {**body, "message": error_message(body["error"], body["message"], lang)}
        if isinstance(body.get("order"), dict):
            out["order"] = localize_view(body["order"], lang)
        return out
    if "orderRef" in body and "waitingFor" in body:
        return localize_view(body, lang)
    return body
