# wyoming-flux: Deepgram Flux speech-to-text as a Wyoming server.
#   docker build -t wyoming-flux .
#   docker run -p 10300:10300 -e DEEPGRAM_API_KEY=... wyoming-flux
# python:3.12-slim exists for amd64, arm64 and armv7; numpy and aiohttp ship wheels for the first two
# (armv7 builds them from source: slow, but it works).
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WYOMING_FLUX_URI=tcp://0.0.0.0:10300

WORKDIR /app
COPY pyproject.toml README.md ./
COPY wyoming_flux ./wyoming_flux
RUN pip install . && rm -rf /app

# Wyoming has no authentication: run unprivileged, and limit clients with WYOMING_FLUX_ALLOW.
RUN useradd --system --uid 10300 --no-create-home --shell /usr/sbin/nologin flux
USER flux

EXPOSE 10300
# A Describe round trip: never touches Flux, so it costs nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wyoming-flux", "check", "--uri", "tcp://127.0.0.1:10300", "--timeout", "4"]
ENTRYPOINT ["wyoming-flux"]
