"""Typed search-attribute keys of an escrow order (docs/workflow.md, "Visibility").

Only Cotpay ids and amounts are indexed, never names, emails or phone numbers beyond the ids
(with pseudonymized search on, ``SellerId``/``BuyerId`` hold ``workflows.pseudonym`` digests).
Every Temporal server that runs orders must have these registered (``temporal operator
search-attribute create`` or ``starter.stack.devserver``); ``SEARCH_ATTRIBUTES`` lists them by type.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

ESCROW_STATUS = SearchAttributeKey.for_keyword("EscrowStatus")
COTPAY_ORDER_ID = SearchAttributeKey.for_int("CotpayOrderId")
SELLER_ID = SearchAttributeKey.for_keyword("SellerId")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
ESCROW_AMOUNT = SearchAttributeKey.for_int("EscrowAmount")
PAYOUT_NOT_BEFORE = SearchAttributeKey.for_datetime("PayoutNotBefore")

ALL_KEYS = (ESCROW_STATUS, COTPAY_ORDER_ID, SELLER_ID, BUYER_ID, ESCROW_AMOUNT, PAYOUT_NOT_BEFORE)

SEARCH_ATTRIBUTES: dict[str, SearchAttributeIndexedValueType] = {
    key.name: key.indexed_value_type for key in ALL_KEYS
}
