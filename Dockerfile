# One image for every service of the pipeline: `codex-analytics <subcommand>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY codex_analytics ./codex_analytics
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
RUN pip install --no-cache-dir -c constraints.txt '.[rocksdb]' \
    && useradd --system --uid 10001 analytics
USER analytics
ENTRYPOINT ["codex-analytics"]
CMD ["--help"]
