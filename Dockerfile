# syntax=docker/dockerfile:1
# capacity-webhook image: build a venv in one stage, ship only the venv.
#   docker build -t capacity-webhook:dev .
#   scripts/build-image            (no Docker daemon: buildah, vfs storage, chroot isolation)
# The chart runs it as uid 65532 with a read-only root filesystem and an emptyDir at /tmp.
#
# PYTHON_IMAGE: any Debian-based image whose `python` is CPython 3.11 with the venv module.
# scripts/build-image passes a local Debian bookworm root (mmdebstrap) when the registry's
# python:3.11-slim cannot be pulled. Both stages must use the same base: the venv's
# interpreter is a symlink to the base's python.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, from image-constraints.txt alone: the exact versions the test suite
# runs against (scripts/image_constraints.py; tests/test_dockerfile.py checks they cover
# pyproject.toml's dependencies), so pip resolves nothing and this layer is rebuilt only
# when they change, not on every source or pyproject.toml edit.
# The optional build secret "pip-ca" is a CA bundle for pip (a TLS-inspecting egress proxy);
# it is mounted for the RUN only and never stored in a layer.
COPY image-constraints.txt .
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && /opt/venv/bin/pip install --no-cache-dir -r image-constraints.txt
# The build context is trimmed by .dockerignore to the package sources.
COPY . .
# All dependencies ship manylinux wheels: no compiler needed. pip compiles .pyc at install
# time, so nothing has to be written at run time on the read-only root.
# pip check: the pinned set satisfies the package's dependencies. Then trim what the server
# never imports (the image was 462 MB, the kubernetes client 126 MB of it):
# * kubernetes' asyncio client (kubernetes/aio, 68 MB) and the aiohttp stack only it imports;
#   the sync client (kubernetes.client, which does need pydantic) stays;
# * botocore's API models of the 420 AWS services it does not call: the webhook calls EC2
#   only (webhook/state/live_instances.py); STS and SSO stay for the credential chain (IRSA
#   assumes its role through STS);
# * kubernetes' sources and docstrings: its 34 MB of generated .py files are replaced by
#   sourceless .pyc compiled with -OO (docstrings stripped; Python loads a legacy foo.pyc when
#   foo.py is absent). Tracebacks inside the client show file and line, not the text;
# * numpy's f2py, type stubs and tests; pip, setuptools and wheel: nothing is installed at
#   run time; test suites shipped inside packages.
# Then import every module the server and the live source use, so a trim too many fails here.
# One RUN: with the vfs storage driver every layer is a full copy of the root filesystem.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --no-cache-dir -y aiohttp aiohttp-retry aiohappyeyeballs aiosignal attrs \
        frozenlist multidict propcache yarl \
 && rm -rf /opt/venv/lib/python3.11/site-packages/kubernetes/aio \
 && find /opt/venv/lib/python3.11/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name ec2 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -b -o 2 -j 0 /opt/venv/lib/python3.11/site-packages/kubernetes \
 && find /opt/venv/lib/python3.11/site-packages/kubernetes -name '*.py' -type f -delete \
 && find /opt/venv/lib/python3.11/site-packages/kubernetes -name __pycache__ -type d -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/numpy/f2py /opt/venv/bin/f2py /opt/venv/bin/numpy-config \
 && find /opt/venv/lib/python3.11/site-packages/numpy -name '*.pyi' -type f -delete \
 && /opt/venv/bin/python -m pip uninstall --no-cache-dir -y pip setuptools wheel \
 && find /opt/venv/lib/python3.11/site-packages -depth -type d -name tests -path '*/site-packages/*/tests' \
        -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import webhook.cli, webhook.server.app, webhook.server.gunicorn, \
webhook.state.live, webhook.state.live_lister, webhook.engine.placement, webhook.aws, certs.reloader, kubernetes.client, kubernetes.config, \
kubernetes.watch, boto3; [boto3.client(name, region_name='us-east-1') for name in ('ec2', 'sts', 'sso', 'sso-oidc')]; \
boto3.client('ec2', region_name='eu-west-1').get_paginator('describe_instance_types')" \
 && /opt/venv/bin/capacity-webhook --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="capacity-webhook" \
      org.opencontainers.image.description="Capacity-aware Kubernetes admission webhook for AWS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# WORKDIR before a RUN: buildah creates the directory only for a RUN, and on a read-only root
# the runtime could not create it.
WORKDIR /app
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin nonroot
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["capacity-webhook"]
CMD ["serve", "--tls-cert-file", "/tls/tls.crt", "--tls-private-key-file", "/tls/tls.key", "--bind", "0.0.0.0", "--port", "8443"]
