# The README's "Install" steps, in an image. State lives on the /var/lib/notifierd volume.
FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/notifierd notifierd \
    && mkdir -p /var/lib/notifierd /etc/notifierd /run/notifierd \
    && chown notifierd:notifierd /var/lib/notifierd /run/notifierd
COPY . /src
RUN python3 -m venv /opt/notifierd \
    && /opt/notifierd/bin/pip install --no-cache-dir /src \
    && cp /src/etc/channels.yaml /etc/notifierd/channels.yaml
USER notifierd
# A system service's paths, for the daemon and for `docker exec ... notifierctl` alike (the
# image's user is not root, whose defaults these are).
ENV NOTIFIERD_CONFIG=/etc/notifierd/channels.yaml \
    NOTIFIERD_STATE_DIR=/var/lib/notifierd \
    NOTIFIERD_SOCKET=/run/notifierd/notifierd.sock
VOLUME ["/var/lib/notifierd"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/notifierd/bin/notifierd", "--host", "0.0.0.0", "--log-format", "json"]
