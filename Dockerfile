# syntax=docker/dockerfile:1
# Build stage: compile wheels into a virtualenv that the runtime stage copies whole.
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A C compiler for the tracer's and the router's modules, which mypyc compiles as the package is built (setup.py).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY pyproject.toml setup.py README.md /src/
COPY gateway /src/gateway
COPY config /src/config
RUN /opt/venv/bin/pip install /src

# Runtime stage: no compilers, no sources, a non-root user.
FROM python:3.11.10-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    O1GW_CONFIG=/etc/o1-gateway/gateway.yaml \
    O1GW__ADMISSION__TEAMS_FILE=""
RUN useradd --system --uid 10001 --no-create-home gateway
COPY --from=build /opt/venv /opt/venv
COPY config/gateway.yaml /etc/o1-gateway/gateway.yaml
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["o1-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
