"""Everything one running sandbox holds: keys, envelope, clock, faults, store, IPNs, service."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from cotpay.envelope import EncryptedEnvelope, Envelope, PlainEnvelope, Sealed
from cotpay.payout_window import PayoutRule
from cotpay.settings import CotpaySettings
from sandbox.clock import SandboxClock
from sandbox.faults import FaultInjector, IpnPolicy
from sandbox.ipn_delivery import IpnDispatcher
from sandbox.keys import SandboxKeys
from sandbox.service import SandboxService
from sandbox.store import Store

EnvelopeMode = Literal["encrypted", "plain"]


class SandboxState:
    def __init__(
        self,
        keys: SandboxKeys,
        *,
        payout_rule: PayoutRule | str = PayoutRule.T1_1600,
        db: Path | None = None,
        envelope_mode: EnvelopeMode = "encrypted",
        ipn_policy: IpnPolicy | None = None,
        base_url: str = "http://127.0.0.1:8090",
        seed: int | None = None,
    ) -> None:
        self.keys = keys
        self.payout_rule = PayoutRule(payout_rule)
        self.envelope_mode: EnvelopeMode = envelope_mode
        self.envelope: Envelope = (
            PlainEnvelope()
            if envelope_mode == "plain"
            else EncryptedEnvelope(
                peer_public_key=keys.merchant_public, own_private_key=keys.cotpay_private
            )
        )
        self.clock = SandboxClock()
        self.faults = FaultInjector(random.Random(seed))
        self.store = Store(db)
        self.ipn = IpnDispatcher(
            self.store, self.clock, self.faults, ipn_policy or IpnPolicy(), self.seal_ipn
        )
        self.service = SandboxService(
            store=self.store,
            clock=self.clock,
            faults=self.faults,
            ipn=self.ipn,
            payout_rule=self.payout_rule.value,
            base_url=base_url,
        )

    @property
    def base_url(self) -> str:
        return self.service.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.service.base_url = value.rstrip("/")

    def seal(self, payload: Any, *, path: str, access_token: str) -> Sealed:
        return self.envelope.seal(
            payload, path=path, access_token=access_token, app_id=self.keys.app_id
        )

    def seal_ipn(self, body: dict[str, Any], path: str) -> Sealed:
        return self.seal(body, path=path, access_token=self.keys.access_token)

    def cotpay_settings(self) -> CotpaySettings:
        return self.keys.cotpay_settings(self.base_url, self.envelope_mode)

    def write_credentials(self) -> Path:
        return self.keys.write_credentials(self.base_url, self.envelope_mode)

    async def start(self) -> None:
        await self.ipn.start()

    async def stop(self) -> None:
        await self.ipn.stop()
        self.store.close()
