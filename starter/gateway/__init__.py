"""The HTTP gateway: REST for shop backends and operators, IPN intake for Cotpay.

``app.py`` builds the FastAPI app, ``routes/`` holds one module per resource (orders, operator,
ipn, health), ``deps.py`` what routes depend on, ``middleware.py`` the ASGI middleware,
``errors.py`` the JSON errors, ``ipn.py`` the reading of IPN bodies, ``server.py`` serving it
with uvicorn. The API is documented in docs/http-api.md.
"""
