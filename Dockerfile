# One image for every service of the pipeline: `codex-analytics <subcommand>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ANALYTICS_STREAM_DATA_DIR=/var/lib/codex-analytics/stream
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY codex_analytics ./codex_analytics
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
RUN pip install --no-cache-dir -c constraints.txt '.[rocksdb]' \
    && useradd --system --uid 10001 analytics \
    && mkdir -p /data /var/lib/codex-analytics \
    && chown analytics /data /var/lib/codex-analytics
USER analytics
# Health and metrics ports by convention: gateway 8080, receiver 8090, sink 9464,
# stream 9465 (each set by its *_ADDR variable).
EXPOSE 8080 8090 9464 9465
ENTRYPOINT ["codex-analytics"]
CMD ["--help"]
