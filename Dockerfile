# tornado-phoenix server image.
#
#   docker build \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse --short HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --pretty=%ct) \
#     -t tornado-phoenix:0.1.0-abc1234 .
#
# BASE_IMAGE must be a Debian bookworm based Python 3.11 with the venv module: the official
# python:3.11-slim-bookworm (python at /usr/local/bin) or a debootstrapped one with Debian's
# python3 and python3-venv (python at /usr/bin); both stages call `python3` from PATH so either works.
# No `# syntax=` line on purpose: it makes BuildKit pull a frontend image from a registry.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# Every file that reaches the final image gets this mtime, so two builds of one commit produce
# byte-identical layers even with the classic builder, which ignores SOURCE_DATE_EPOCH itself.
ARG SOURCE_DATE_EPOCH=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src

# Dependencies first and alone, so a code change reuses this (slow) layer.
COPY requirements/runtime.lock requirements/runtime.lock
# --only-binary: the runtime image never runs a compiler or an sdist's setup.py.
# --no-compile: bytecode is compiled once below, hash-based, so it carries no mtimes.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --only-binary :all: --no-compile \
      -r requirements/runtime.lock

# The build backend, hash-pinned like everything else (pip's build isolation would fetch it unpinned).
# Builder stage only: it is uninstalled before the venv is copied into the final image.
RUN printf '%s\n' \
      'setuptools==80.9.0 \' \
      '  --hash=sha256:062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922 \' \
      '  --hash=sha256:f36b47402ecde768dbfafc46e8e4207b4360c654f1f3bb84475f0a28628fb19c' \
      > /tmp/build.lock \
 && /opt/venv/bin/pip install --require-hashes --only-binary :all: --no-compile -r /tmp/build.lock

COPY . /src
# The project's README is package metadata only; an absent one must not break the image.
RUN test -f README.md || : > README.md \
 && /opt/venv/bin/pip install --no-deps --no-build-isolation --no-compile . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 1 --invalidation-mode unchecked-hash /opt/venv/lib \
 && mkdir -p /rootfs/opt /rootfs/etc \
 && cp -a /opt/venv /rootfs/opt/venv \
 && cp /etc/passwd /etc/group /rootfs/etc/ \
 && echo 'app:x:10001:10001:tornado-phoenix:/nonexistent:/usr/sbin/nologin' >> /rootfs/etc/passwd \
 && echo 'app:x:10001:' >> /rootfs/etc/group \
 && find /rootfs -exec touch --no-dereference --date="@${SOURCE_DATE_EPOCH}" {} +

FROM ${BASE_IMAGE}
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/tornado-phoenix/tornado-phoenix
LABEL org.opencontainers.image.title="tornado-phoenix" \
      org.opencontainers.image.description="A Phoenix Channels server on Tornado" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

# One layer: the venv plus the passwd/group entries of the unprivileged user. No RUN here, so the
# final stage adds nothing whose timestamps depend on when it was built.
COPY --from=builder /rootfs/ /

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TP_HOST=0.0.0.0 \
    TP_PORT=4000
USER 10001:10001
WORKDIR /tmp
EXPOSE 4000

# stdlib only: the slim base has no curl. Timeout below the interval so probes never pile up.
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4000/health', timeout=3).status == 200 else 1)"]

ENTRYPOINT ["/opt/venv/bin/tornado-phoenix"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4000"]
