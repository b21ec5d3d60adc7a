# syntax=docker/dockerfile:1
# capacity-webhook image: build a venv in one stage, ship only the venv.
#   docker build -t capacity-webhook:dev .
#   scripts/build-image            (no Docker daemon: buildah, vfs storage, chroot isolation)
# The chart runs it as uid 65532 with a read-only root filesystem and an emptyDir at /tmp.
#
# PYTHON_IMAGE: any Debian-based image whose `python` is CPython 3.11 with the venv module.
# scripts/build-image passes a local Debian bookworm root (mmdebstrap) when the registry's
# python:3.11-slim cannot be pulled. The builder and runtime stages must use the same base: the venv's
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
# All dependencies ship manylinux wheels: no compiler needed. pip compiles .pyc at install
# time, so nothing has to be written at run time on the read-only root.
# pip check: the pinned set is consistent. Then, still in this layer (none of it depends on
# the sources, so a source edit does not redo it), trim what the server never imports (the
# image was 462 MB, the kubernetes client 126 MB of it):
# * kubernetes' asyncio client (kubernetes/aio, 68 MB) and the aiohttp stack only it imports;
#   the sync client (kubernetes.client, which does need pydantic) stays;
# * botocore's API models of the 420 AWS services it does not call: the webhook calls EC2
#   only (webhook/state/live_instances.py); STS and SSO stay for the credential chain (IRSA
#   assumes its role through STS);
# * kubernetes' sources and docstrings: its 34 MB of generated .py files are replaced by
#   sourceless .pyc compiled with -OO (docstrings stripped; Python loads a legacy foo.pyc when
#   foo.py is absent). Tracebacks inside the client show file and line, not the text;
# * botocore's older EC2 API versions (it loads the newest, 2016-11-15) and its examples
#   (documentation only);
# * numpy's subpackages that `import numpy` loads lazily and the engine never calls (random,
#   fft, polynomial, testing, typing, distutils, f2py), its C headers and the _simd test
#   module: the engine uses only arrays, sorting and searching (webhook/engine/room_index.py,
#   placement.py). numpy.linalg stays (`import numpy` loads it) and so does numpy.ma
#   (numpy.unique calls np.ma.is_masked); tests/e2e/test_image_e2e.py calls each function;
# * type stubs and the test suites shipped inside packages.
# One RUN per layer: with the vfs storage driver every layer is a full copy of the root.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && /opt/venv/bin/pip install --no-cache-dir -r image-constraints.txt \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --no-cache-dir -y aiohttp aiohttp-retry aiohappyeyeballs aiosignal attrs \
        frozenlist multidict propcache yarl \
 && cd /opt/venv/lib/python3.11/site-packages \
 && rm -rf /opt/venv/lib/python3.11/site-packages/kubernetes/aio \
 && find botocore/data -mindepth 1 -maxdepth 1 -type d ! -name ec2 ! -name sts ! -name sso ! -name sso-oidc \
        -exec rm -rf {} + \
 && find botocore/data/ec2 -mindepth 1 -maxdepth 1 -type d ! -name 2016-11-15 -exec rm -rf {} + \
 && find botocore/data -name 'examples-1.json' -type f -delete \
 && /opt/venv/bin/python -m compileall -q -b -o 2 -j 0 kubernetes \
 && find kubernetes -name '*.py' -type f -delete \
 && find kubernetes -name __pycache__ -type d -prune -exec rm -rf {} + \
 && (cd numpy && rm -rf f2py distutils random fft polynomial testing typing _pyinstaller _core/include \
        _core/lib _core/_simd.*) \
 && rm -f /opt/venv/bin/f2py /opt/venv/bin/numpy-config \
 && find numpy -name '*.pyi' -type f -delete \
 && find . -depth -type d -name tests -path './*/tests' -exec rm -rf {} +
# The build context is trimmed by .dockerignore to the package sources.
COPY . .
# The package itself, without dependencies; its requirements are checked against what is
# installed (pip check cannot: kubernetes names the aiohttp removed above). Then pip,
# setuptools and wheel go (nothing is installed at run time), and every module the server
# and the live source use is imported, so a trim too many fails the build here.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/venv/bin/python -c "import importlib.metadata as m; from packaging.requirements import Requirement; \
wanted = [Requirement(r) for r in m.requires('capacity-webhook') or []]; \
bad = [str(r) for r in wanted if (r.marker is None or r.marker.evaluate({'extra': ''})) \
and not r.specifier.contains(m.version(r.name), prereleases=True)]; \
assert not bad, f'installed versions do not satisfy {bad}'" \
 && /opt/venv/bin/python -m pip uninstall --no-cache-dir -y pip setuptools wheel \
 && /opt/venv/bin/python -c "import webhook.cli, webhook.server.app, webhook.server.gunicorn, \
webhook.state.live, webhook.state.live_lister, webhook.engine.placement, webhook.aws, certs.reloader, kubernetes.client, kubernetes.config, \
kubernetes.watch, boto3; [boto3.client(name, region_name='us-east-1') for name in ('ec2', 'sts', 'sso', 'sso-oidc')]; \
boto3.client('ec2', region_name='eu-west-1').get_paginator('describe_instance_types')" \
 && /opt/venv/bin/capacity-webhook --help > /dev/null

# The runtime root: the base with what the server never runs purged, so the image is not the
# base's 130 MB plus the venv. With dpkg, so /var/lib/dpkg/status still lists exactly what is
# installed (image scanners read it):
# * apt and its libraries (gnutls and friends), perl-base, debconf, tzdata, the PAM and shadow
#   tools (after the user is made), util-linux, e2fsprogs, init scripts: a webhook container
#   is never logged into, mounted from, or upgraded in place;
# * the venv module and the pip/setuptools wheels it installs (the venv comes from the builder);
# * glibc's gconv modules (character set conversion for iconv; Python has its own codecs),
#   debconf's cache, logs.
# Kept: python, coreutils, dash and bash (kubectl exec), ca-certificates, libc and every
# library the python modules load. Two passes: maintainer scripts of the first need debconf,
# perl and update-rc.d, removed in the second. A package a base does not have is skipped.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin nonroot \
 && mkdir -p /app /opt/venv \
 && installed() { dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' "$@" 2>/dev/null \
        | awk '$1 == "ii" {print $2}'; } \
 && dpkg --purge --force-remove-essential --force-depends $(installed \
        apt libapt-pkg6.0 gpgv debian-archive-keyring libgnutls30 libp11-kit0 libtasn1-6 libidn2-0 \
        libunistring2 libnettle8 libhogweed6 libseccomp2 libxxhash0 adduser passwd login \
        libpam-modules libpam-modules-bin libpam-runtime libpam0g libsemanage2 libsemanage-common \
        libsepol2 util-linux util-linux-extra mount e2fsprogs libext2fs2 libss2 logsave tzdata \
        python3.11-venv python3-pip-whl python3-setuptools-whl python3-distutils python3-lib2to3 \
        sysvinit-utils) \
 && dpkg --purge --force-remove-essential --force-depends $(installed init-system-helpers debconf perl-base) \
 && rm -rf /usr/lib/x86_64-linux-gnu/gconv /usr/lib/aarch64-linux-gnu/gconv /var/cache/debconf \
        /var/lib/apt /var/cache/apt /var/log/* /usr/share/python-wheels \
 && python3 -c "import ssl, sqlite3, ctypes, dbm, lzma, bz2, zlib, json, decimal, uuid" \
 && ! dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' | grep -v '^ii '

# The shipped image: that root and the venv, two layers, nothing of the base underneath.
# The venv is the last instruction: after a source edit only that layer is rebuilt (with vfs
# every instruction after a changed one is another full copy of the root filesystem).
FROM scratch
LABEL org.opencontainers.image.title="capacity-webhook" \
      org.opencontainers.image.description="Capacity-aware Kubernetes admission webhook for AWS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=runtime / /
# /app is made in the runtime stage: on a read-only root the runtime could not create it.
WORKDIR /app
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["capacity-webhook"]
CMD ["serve", "--tls-cert-file", "/tls/tls.crt", "--tls-private-key-file", "/tls/tls.key", "--bind", "0.0.0.0", "--port", "8443"]
COPY --from=builder /opt/venv /opt/venv
