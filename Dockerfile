# syntax=docker/dockerfile:1
# Alliance API image. The embedded database is for development only: DATABASE_URL must be given.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/alliance
RUN python -m venv /opt/venv
COPY pyproject.toml README.md constraints.txt ./
COPY app/__init__.py app/__init__.py
# Dependencies first, in their own layer, so code changes rebuild quickly.
RUN /opt/venv/bin/pip install -c constraints.txt . && /opt/venv/bin/pip uninstall -y alliance
COPY app app
COPY alembic alembic
COPY alembic.ini ./
RUN /opt/venv/bin/pip install --no-deps -e .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 ALLIANCE_ENVIRONMENT=production
RUN useradd --system --uid 10001 --home /srv/alliance alliance
WORKDIR /srv/alliance
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/alliance /srv/alliance
USER alliance
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["alliance", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
