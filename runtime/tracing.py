"""OpenTelemetry tracing, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (docs/deployment.md).

Spans go to the OTLP/HTTP exporter (the standard ``OTEL_*`` variables configure it, e.g.
``OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318``). Temporal calls are traced by
``temporalio.contrib.opentelemetry.TracingInterceptor`` on the client (workers built from that
client inherit it); the gateway adds one server span per HTTP request, continuing a caller's
W3C ``traceparent``. The packages come from the ``otel`` extra and are imported only when
tracing is on, so the default install does not need them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import temporalio.client
from fastapi import FastAPI, Request, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    exporter_otlp_endpoint: str | None = None
    service_name: str | None = Field(default=None)


def tracing_enabled(settings: TracingSettings | None = None) -> bool:
    return bool((settings or TracingSettings()).exporter_otlp_endpoint)


def configure_tracing(
    default_service_name: str, settings: TracingSettings | None = None
) -> list[temporalio.client.Interceptor]:
    """Install the global tracer provider; returns the client interceptors to connect with.

    Returns ``[]`` when tracing is off. Call once at process start (worker, gateway, run).
    """
    settings = settings or TracingSettings()
    if not tracing_enabled(settings):
        return []
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    resource = Resource.create({"service.name": settings.service_name or default_service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return [TracingInterceptor()]


def shutdown_tracing() -> None:
    """Flush pending spans at shutdown (no-op when tracing is off)."""
    if not tracing_enabled():
        return
    from opentelemetry import trace

    shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
    if callable(shutdown):
        shutdown()


def instrument_app(app: FastAPI, settings: TracingSettings | None = None) -> bool:
    """Add a server span per request to a FastAPI app when tracing is on."""
    if not tracing_enabled(settings):
        return False
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("cotpay-escrow.gateway")

    @app.middleware("http")
    async def trace_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        parent = propagate.extract(dict(request.headers))
        with tracer.start_as_current_span(
            f"HTTP {request.method}", context=parent, kind=trace.SpanKind.SERVER
        ) as span:
            response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", None)
            if route:
                span.update_name(f"{request.method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    return True
