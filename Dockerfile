# syntax=docker/dockerfile:1
# The gateway's image: wheels built in one stage, installed with no network into a virtualenv
# in the next (scripts/install-wheels.sh, the same step tests/deploy/test_image_install.py
# runs), run as a non-root user on a read-only root filesystem. Writable: the state
# directory (held liability records) and /tmp, as volumes; the store is PostgreSQL.
FROM python:3.11-slim-bookworm AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clients/python ./clients/python
COPY src ./src
# The client distribution (the contract the server depends on) is built beside the server.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients/python .

FROM python:3.11-slim-bookworm
COPY scripts/install-wheels.sh /usr/local/bin/install-wheels.sh
COPY --from=wheels /wheels /wheels
RUN install-wheels.sh /wheels /opt/essc-gateway \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin essc \
    && mkdir -p /var/lib/essc-gateway && chown 10001:10001 /var/lib/essc-gateway
ENV PATH=/opt/essc-gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ESSC_HOST=0.0.0.0 \
    ESSC_STATE_DIR=/var/lib/essc-gateway \
    ESSC_TRACES_FILE= \
    ESSC_LOG_FORMAT=json
USER 10001:10001
VOLUME ["/var/lib/essc-gateway", "/tmp"]
# Banks (TLS), plaintext health for probes, Prometheus /metrics.
EXPOSE 50051 8081 9464
HEALTHCHECK --interval=10s --timeout=3s CMD ["essc-gateway", "health", "--address", "127.0.0.1:8081"]
ENTRYPOINT ["essc-gateway"]
CMD ["run"]
