# syntax=docker/dockerfile:1
# The controller's image: `docker build -t celery-scaler .`
#
# Dependencies come from requirements.lock (exact versions and hashes, compiled from
# pyproject.toml's runtime dependencies; see its header to regenerate). The build stage
# installs them as wheels only, so nothing is compiled, and the final stage copies the
# virtualenv onto the same slim base: no compiler, no pip cache, no build files.
# tests/test_deploy_image.py runs the same install steps in a clean virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/celery-scaler
COPY requirements.lock /build/requirements.lock
RUN /opt/celery-scaler/bin/pip install --require-hashes --only-binary :all: --no-deps \
        -r /build/requirements.lock
COPY pyproject.toml README.md /build/
COPY controller /build/controller
# The instrumentation is a distribution of its own that the controller requires; like the
# controller, it is built from this source, not taken from an index.
COPY instrument /build/instrument
RUN /opt/celery-scaler/bin/pip install --no-deps /build/instrument /build \
    && /opt/celery-scaler/bin/pip check

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="celery-scaler" \
      org.opencontainers.image.description="Autoscaling controller for Celery workers on AWS ECS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --system --gid 10001 celery-scaler \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --shell /usr/sbin/nologin celery-scaler
COPY --from=build /opt/celery-scaler /opt/celery-scaler
ENV PATH=/opt/celery-scaler/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The default configuration path, ./celery-scaler.yaml, is where the chart mounts it.
WORKDIR /etc/celery-scaler
USER 10001:10001
# /metrics, /healthz and /readyz (Controller spec.prometheus.port).
EXPOSE 9808
# The slim image has no curl: Python asks /healthz. Kubernetes and ECS use their own
# probes (the chart's and the task definition's) and ignore this one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9808/healthz', timeout=4)"]
ENTRYPOINT ["celery-scaler"]
# JSON lines on stdout, never tables for people: in a container each line is a log event.
CMD ["reconcile", "--output", "json"]
