# syntax=docker/dockerfile:1
# capacity-webhook image: build a wheel + venv in one stage, ship only the venv.
#   docker build -t capacity-webhook:dev .
# The chart runs it as uid 65532 with a read-only root filesystem and an emptyDir at /tmp.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# The build context is trimmed by .dockerignore to the package sources.
COPY . .
# pip builds the wheel and installs it with its dependencies, which all ship manylinux
# wheels: no compiler needed. pip compiles .pyc at install time, so nothing has to be
# written at run time on the read-only root.
RUN /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/capacity-webhook --help > /dev/null

FROM python:3.11-slim
LABEL org.opencontainers.image.title="capacity-webhook" \
      org.opencontainers.image.description="Capacity-aware Kubernetes admission webhook for AWS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin nonroot
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["capacity-webhook"]
CMD ["serve", "--tls-cert-file", "/tls/tls.crt", "--tls-private-key-file", "/tls/tls.key", "--bind", "0.0.0.0", "--port", "8443"]
