# The README's "Install" steps, in an image. State lives on the /var/lib/notifierd volume.
FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/notifierd notifierd \
    && mkdir -p /var/lib/notifierd /etc/notifierd \
    && chown notifierd:notifierd /var/lib/notifierd
COPY . /src
RUN python3 -m venv /opt/notifierd \
    && /opt/notifierd/bin/pip install --no-cache-dir /src \
    && cp /src/etc/channels.yaml /etc/notifierd/channels.yaml
USER notifierd
VOLUME ["/var/lib/notifierd"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/notifierd/bin/notifierd", "--config", "/etc/notifierd/channels.yaml", \
            "--state-dir", "/var/lib/notifierd", "--host", "0.0.0.0", "--log-format", "json"]
