# wyoming-flux: Deepgram Flux speech-to-text as a Wyoming server.
#   docker build -t wyoming-flux .
#   docker run -p 10300:10300 -e DEEPGRAM_API_KEY=... wyoming-flux
# python:3.12-slim exists for amd64, arm64 and armv7; numpy and aiohttp ship wheels for the first two
# (armv7 builds them from source: slow, but it works).
# BASE_IMAGE may be any Debian-like image with python3 (3.11+) and its venv module, e.g. one made
# from Debian packages by script/build-image where no registry is reachable.
ARG BASE_IMAGE=python:3.12-slim-bookworm

# Build stage: the package and its server dependencies in a virtualenv, without pip's caches.
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY wyoming_flux ./wyoming_flux
RUN python3 -m venv /opt/wyoming-flux \
 && /opt/wyoming-flux/bin/pip install ".[server]" \
 && /opt/wyoming-flux/bin/pip uninstall -y pip setuptools

# Final stage: the base image plus that virtualenv (same Python, same path).
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/wyoming-flux/bin:$PATH \
    WYOMING_FLUX_URI=tcp://0.0.0.0:10300
COPY --from=build /opt/wyoming-flux /opt/wyoming-flux

# Wyoming has no authentication: run unprivileged, and limit clients with WYOMING_FLUX_ALLOW.
RUN useradd --system --uid 10300 --no-create-home --shell /usr/sbin/nologin flux
USER flux

EXPOSE 10300
# A Describe round trip: never touches Flux, so it costs nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wyoming-flux", "check", "--uri", "tcp://127.0.0.1:10300", "--timeout", "4"]
ENTRYPOINT ["wyoming-flux"]
