# syntax=docker/dockerfile:1
# Build stage: the wheel and its dependencies, pinned by requirements.lock; htmx from npm.
FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY server ./server
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js ./server/static/vendor/htmx.min.js
RUN python -m venv /opt/chartdesk \
 && /opt/chartdesk/bin/pip install --no-cache-dir -c requirements.lock .

# Runtime stage: no compilers, no secrets, not root.
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home /app chartdesk
WORKDIR /app
COPY --from=build /opt/chartdesk /opt/chartdesk
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root templates ./templates
COPY --chown=root:root server ./server
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js ./server/static/vendor/htmx.min.js
# /app first on the path: templates and migrations are read relative to the source tree.
ENV PATH=/opt/chartdesk/bin:$PATH PYTHONPATH=/app CHARTDESK_ENV=production PYTHONUNBUFFERED=1
USER chartdesk
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["chartdesk", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
