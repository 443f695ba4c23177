# syntax=docker/dockerfile:1
# One image for the worker, the gateway, the codec server and the sandbox (docker-compose.yml
# picks the command). Dependencies are pinned by deploy/requirements.lock
# (regenerate with: .venv/bin/python deploy/lock_requirements.py).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY deploy/requirements.lock deploy/requirements.lock
RUN pip install --no-deps -r deploy/requirements.lock
# The build backend is needed only to install the project itself and is removed afterwards.
RUN pip install hatchling==1.33.0
COPY pyproject.toml README.md worker.py ./
COPY cotpay cotpay
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY runtime runtime
COPY sandbox sandbox
COPY store store
COPY webhooks webhooks
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall -y hatchling pathspec pluggy trove-classifiers packaging \
    && pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 escrow \
    && useradd --system --uid 10001 --gid escrow --home-dir /app --shell /usr/sbin/nologin escrow \
    && mkdir -p /data && chown escrow:escrow /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root worker.py /app/worker.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ESCROW_LOG_FORMAT=json
USER escrow:escrow
EXPOSE 8000 8081 9000 9464
CMD ["python", "worker.py"]
