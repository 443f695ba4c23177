"""Who may call which route: API keys, roles, and the rule every route declares
(docs/security.md, "API keys and roles").

Every route declares its rule as a dependency: ``Depends(require(Role.viewer))`` (or takes the
caller as a parameter, ``who: Viewer``), and the public ones ``Depends(PUBLIC)`` (the IPN
intake, which checks its own signature, and ``/healthz``). ``AccessControl``, a pure ASGI
middleware, finds the matched route's rule *before the body is read* and answers:

- 401 ``unauthorized``: no key, a malformed, unknown, revoked or expired key;
- 403 ``forbidden``: a key whose role is below the rule's;
- 403 ``no_access_rule``: a route that declares no rule (fail closed; a test lists them);
- 503 ``store_unavailable``: a store key while the store cannot be read.

Keys come from two places. The bootstrap and development path, ``ESCROW_API_KEYS``: entries
``KEY[:ROLE[:MERCHANT]]``, role ``operator`` and merchant ``default`` when left out, named
``env-key-<n>`` by position. And the store (``cotpay-escrow keys create``), looked up by key id,
checked against the SHA-256 the store keeps, cached for ``ESCROW_KEY_CACHE_SECONDS`` (a revoked
key stops working within that time), its last use recorded at most once a minute. A key is never
logged: log lines carry the key id only.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import structlog
from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from starter.gateway.errors import ApiError
from starter.gateway.middleware import send_error
from starter.gateway.ratelimit import RateLimiter
from store.access import AccessStore
from store.access_models import DEFAULT_MERCHANT, MERCHANT_PATTERN, Role, key_hash, parse_api_key
from store.errors import StoreUnavailable

log = structlog.get_logger("cotpay_escrow.gateway")

_BEARER = HTTPBearer(
    auto_error=False,
    description="an API key (cotpay-escrow keys create, or ESCROW_API_KEYS)",
)


@dataclass(frozen=True)
class Principal:
    """The caller, as a route sees it: ``who.merchant`` scopes every order it touches."""

    key_id: str
    name: str
    merchant: str
    role: Role
    source: Literal["environment", "store"]

    @property
    def actor(self) -> str:
        """How the audit trail and an order's timeline name the caller (never the key)."""
        return f"key:{self.name} ({self.key_id})"


class AccessRule:
    """What a route requires; ``role=None`` is a public route."""

    def __init__(self, role: Role | None) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"AccessRule({self.role.value if self.role else 'public'})"


class _RoleRule(AccessRule):
    async def __call__(
        self,
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):  # the middleware did not run: fail closed
            raise ApiError(401, "unauthorized", "missing or wrong API key")
        assert self.role is not None
        if not principal.role.allows(self.role):
            raise ApiError(403, "forbidden", f"this route needs a {self.role.value} key")
        return principal


class _PublicRule(AccessRule):
    async def __call__(self) -> None:
        return None


_RULES: dict[Role, _RoleRule] = {role: _RoleRule(role) for role in Role}
PUBLIC = _PublicRule(None)


def require(role: Role) -> _RoleRule:
    """The rule of a route that needs at least ``role`` (viewer ⊂ shop ⊂ operator)."""
    return _RULES[role]


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Shop = Annotated[Principal, Depends(require(Role.shop))]
Operator = Annotated[Principal, Depends(require(Role.operator))]


def _rules_of(dependant: Dependant) -> list[AccessRule]:
    found: list[AccessRule] = []
    for sub in dependant.dependencies:
        if isinstance(sub.call, AccessRule):
            found.append(sub.call)
        found += _rules_of(sub)
    return found


def _strictest(rules: Sequence[AccessRule]) -> AccessRule | None:
    if not rules:
        return None
    roles = [rule.role for rule in rules if rule.role is not None]
    return require(max(roles, key=lambda role: role.rank)) if roles else PUBLIC


@dataclass(frozen=True)
class RouteEntry:
    """One route of the app as the middleware matches it: full path, methods, rule."""

    path: str
    methods: frozenset[str]
    regex: re.Pattern[str]
    rule: AccessRule | None
    """The strictest rule the route declares; None when it declares none (refused)."""
    api: bool
    """A route of ours (``APIRoute``), not one FastAPI adds (``/openapi.json``, ``/docs``)."""


def route_table(routes: Sequence[BaseRoute]) -> list[RouteEntry]:
    """Every route of the app with its rule, included routers flattened (FastAPI's
    ``iter_route_contexts``). FastAPI's own routes (the API document, Swagger UI) are public;
    ``ESCROW_DOCS`` decides whether they exist."""
    table: list[RouteEntry] = []
    for context in iter_route_contexts(routes):
        regex = getattr(context, "path_regex", None)
        if regex is None or context.path is None:
            continue
        api = isinstance(context.original_route, APIRoute)
        dependant = getattr(context, "dependant", None)
        if api and dependant is None:
            dependant = getattr(context.original_route, "dependant", None)
        rule = _strictest(_rules_of(dependant)) if api and dependant is not None else None
        table.append(
            RouteEntry(
                path=context.path,
                methods=frozenset(context.methods or ()),
                regex=regex,
                rule=rule if api else PUBLIC,
                api=api,
            )
        )
    return table


# --- keys ----------------------------------------------------------------------------------


class InvalidKeySpec(ValueError):
    """An ``ESCROW_API_KEYS`` entry that cannot be read (the gateway refuses to start)."""


def parse_env_keys(entries: Sequence[str]) -> dict[str, Principal]:
    """``ESCROW_API_KEYS`` entries ``KEY[:ROLE[:MERCHANT]]`` by key."""
    keys: dict[str, Principal] = {}
    for position, entry in enumerate(entries, start=1):
        key, *rest = entry.split(":")
        if not key or len(rest) > 2:
            raise InvalidKeySpec(f"ESCROW_API_KEYS entry {position}: use KEY[:ROLE[:MERCHANT]]")
        role_name = rest[0] if rest and rest[0] else Role.operator.value
        merchant = rest[1] if len(rest) > 1 and rest[1] else DEFAULT_MERCHANT
        try:
            role = Role(role_name)
        except ValueError:
            raise InvalidKeySpec(
                f"ESCROW_API_KEYS entry {position}: role must be one of "
                f"{', '.join(r.value for r in Role)}"
            ) from None
        if not re.match(MERCHANT_PATTERN, merchant):
            raise InvalidKeySpec(f"ESCROW_API_KEYS entry {position}: bad merchant name")
        keys[key] = Principal(
            key_id=f"env-{position}",
            name=f"env-key-{position}",
            merchant=merchant,
            role=role,
            source="environment",
        )
    return keys


class KeyResolver:
    """Turns a bearer token into a ``Principal``: environment keys first, then the store."""

    def __init__(
        self,
        env_keys: dict[str, Principal],
        access: AccessStore | None = None,
        *,
        cache_seconds: float = 5.0,
        touch_every: float = 60.0,
        cache_size: int = 10_000,
    ) -> None:
        self._env = [(key.encode(), principal) for key, principal in env_keys.items()]
        self.access = access
        self.cache_seconds = cache_seconds
        self.touch_every = touch_every
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._clock: Callable[[], float] = time.monotonic

    async def resolve(self, token: str) -> Principal | None:
        """None for a malformed, unknown, wrong, revoked or expired key. Raises
        ``StoreUnavailable`` when a store key cannot be checked."""
        candidate = token.encode()
        found: Principal | None = None
        for key, env_principal in self._env:
            if hmac.compare_digest(key, candidate):
                found = env_principal
        if found is not None:
            return found
        if self.access is None or parse_api_key(token) is None:
            return None
        digest = key_hash(token)
        now = self._clock()
        cached = self._cache.get(digest)
        principal: Principal | None
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            record = await self.access.authenticate(token)
            principal = (
                Principal(
                    key_id=record.key_id,
                    name=record.name,
                    merchant=record.merchant,
                    role=record.role,
                    source="store",
                )
                if record is not None
                else None
            )
            self._remember(digest, now, principal)
        if principal is not None:
            await self._touch(principal.key_id, now)
        return principal

    def _remember(self, digest: str, now: float, principal: Principal | None) -> None:
        self._cache[digest] = (now + self.cache_seconds, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop the cache (tests; a revocation then takes effect at once)."""
        self._cache.clear()

    async def _touch(self, key_id: str, now: float) -> None:
        if self.access is None or now - self._touched.get(key_id, -1e18) < self.touch_every:
            return
        self._touched[key_id] = now
        try:
            await asyncio.wait_for(self.access.touch_key(key_id, datetime.now(UTC)), 2.0)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("auth.last_use_not_recorded", key_id=key_id, error=type(exc).__name__)


# --- the middleware ------------------------------------------------------------------------


RoutesOf = Callable[[], Sequence[BaseRoute]]


class AccessControl:
    """Authentication and the route's rule, before the app reads anything of the request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RoutesOf,
        keys: KeyResolver,
        limiter: RateLimiter | None = None,
        prefix: str = "/v1/",
    ) -> None:
        self.app = app
        self.routes = routes
        self.keys = keys
        self.limiter = limiter
        self.prefix = prefix
        self._table: list[RouteEntry] | None = None

    def match(self, scope: Scope) -> tuple[RouteEntry | None, AccessRule | None]:
        """The route this request reaches and its rule; (None, None) when no route takes it
        (an unknown path, or a known path with another method)."""
        if self._table is None:
            self._table = route_table(self.routes())
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        for entry in self._table:
            if entry.regex.match(path) and (
                method in entry.methods or (method == "HEAD" and "GET" in entry.methods)
            ):
                return entry, entry.rule
        return None, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        route, rule = self.match(scope)
        under_api = path.startswith(self.prefix) or path == self.prefix.rstrip("/")
        if self.limiter is not None and not await self.limiter.admit_source(
            scope, send, route.path if route is not None else None
        ):
            return
        if rule is PUBLIC or (route is None and not under_api):
            await self.app(scope, receive, send)
            return
        principal = await self._authenticate(scope, send)
        if principal is None:
            return
        if route is not None:
            if rule is None:
                log.error("auth.route_without_rule", route=route.path)
                await send_error(send, 403, "no_access_rule", "this route declares no access rule")
                return
            if rule.role is not None and not principal.role.allows(rule.role):
                log.info(
                    "auth.forbidden",
                    key_id=principal.key_id,
                    role=principal.role.value,
                    needs=rule.role.value,
                    route=route.path,
                )
                await send_error(
                    send, 403, "forbidden", f"this route needs a {rule.role.value} key"
                )
                return
        if self.limiter is not None and not await self.limiter.admit_key(principal.key_id, send):
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, send: Send) -> Principal | None:
        token = _bearer_token(scope)
        principal: Principal | None = None
        if token:
            try:
                principal = await self.keys.resolve(token)
            except StoreUnavailable:
                log.error("auth.store_unavailable")
                await send_error(
                    send, 503, "store_unavailable", "API keys cannot be checked right now"
                )
                return None
        if principal is None:
            await send_error(
                send,
                401,
                "unauthorized",
                "missing or wrong API key (Authorization: Bearer <key>)",
                headers=[(b"www-authenticate", b"Bearer")],
            )
        return principal


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None
