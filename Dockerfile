# A reproducible image: every dependency pinned with its hashes in requirements.lock (`make lock`).
# Build: docker build -t notifierd .   State lives on the /var/lib/notifierd volume.
# The base image is an argument so that a release can pin it by digest (python:3.11-slim@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock alone first: the dependencies' layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python3 -m venv /opt/notifierd \
    && /opt/notifierd/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY notifierd ./notifierd
# The build backend is the locked setuptools already installed: nothing unpinned is fetched.
RUN /opt/notifierd/bin/pip install --no-deps --no-build-isolation . \
    && /opt/notifierd/bin/notifierd --help > /dev/null

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/notifierd notifierd \
    && mkdir -p /var/lib/notifierd /etc/notifierd /run/notifierd \
    && chown notifierd:notifierd /var/lib/notifierd /run/notifierd
COPY --from=build /opt/notifierd /opt/notifierd
COPY etc/channels.yaml /etc/notifierd/channels.yaml
# A system service's paths, set rather than left to the defaults (the image's user is not root,
# whose defaults these are), so that the daemon and `docker exec <container> notifierctl status`
# agree whoever runs them.
ENV PATH=/opt/notifierd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    NOTIFIERD_CONFIG=/etc/notifierd/channels.yaml \
    NOTIFIERD_STATE_DIR=/var/lib/notifierd \
    NOTIFIERD_SOCKET=/run/notifierd/notifierd.sock \
    NOTIFIERD_HOST=0.0.0.0 \
    NOTIFIERD_PORT=8080 \
    NOTIFIERD_LOG_FORMAT=json
USER notifierd:notifierd
WORKDIR /var/lib/notifierd
VOLUME ["/var/lib/notifierd"]
EXPOSE 8080
STOPSIGNAL SIGTERM
# /api/health answers 200 while the process serves, maintenance included (/api/ping would make
# a paused instance "unhealthy"). No curl in the image: Python's urllib does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('NOTIFIERD_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["notifierd"]
