# The costwarden operator image: `costwarden run` as a non-root user (65532).
#
#   docker build -t REGISTRY/costwarden:0.1.0 .
#
# Dependencies come only from requirements.lock (pinned, with hashes; `make lock` regenerates it
# after pyproject.toml's runtime dependencies change); the package itself is installed on top
# without dependencies, so nothing unpinned gets in. The lock holds what `costwarden run` needs and
# no extra: the stand-in (sim), the demo and `costwarden top` are not in the image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/costwarden
COPY requirements.lock ./
RUN /opt/costwarden/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/costwarden/bin/pip install --no-deps --no-index /wheels/costwarden-*.whl \
 && /opt/costwarden/bin/python -m compileall -q /opt/costwarden/lib

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/costwarden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 65532 costwarden \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin costwarden
COPY --from=build /opt/costwarden /opt/costwarden
USER 65532:65532
# 9090: /metrics (and the probes); 9443: the admission webhook.
EXPOSE 9090 9443
ENTRYPOINT ["costwarden", "run"]
