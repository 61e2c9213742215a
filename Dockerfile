# Cortex's container image. Build and run (docs/operations.md, Deploy):
#   docker build --build-arg BUILD_SHA="$(git rev-parse --short HEAD)" -t cortex:0.1.0 .
#   docker run --rm -p 8000:8000 cortex:0.1.0
# make test checks what can be checked without an engine (DeployFilesTests): hadolint, every COPY
# source exists, the entrypoint is the built product, and the runtime stage installs every shared
# library `ldd .build/release/cortex` names.

# 1. Build with the Swift toolchain.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-dev libpng-dev libturbojpeg0-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY bench/BareHummingbird ./bench/BareHummingbird
RUN swift build -c release --product cortex \
    && mkdir -p /out/swift \
    && cp "$(swift build -c release --show-bin-path)/cortex" /out/cortex \
    && cp /usr/lib/swift/linux/*.so /out/swift/

# 2. ONNX Runtime's shared library, from the same PyPI wheel `make run` installs.
FROM python:3.11-slim-bookworm AS onnxruntime
RUN pip install --no-cache-dir onnxruntime==1.32.0 \
    && mkdir -p /out \
    && cp /usr/local/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so* /out/

# 3. Run on slim Debian with the Swift runtime libraries, libpng, libjpeg-turbo and SQLite.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-0 libpng16-16 libturbojpeg0 zlib1g libstdc++6 libgcc-s1 ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin cortex
COPY --from=build /out/swift/ /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
COPY --from=build /out/cortex /usr/local/bin/cortex
WORKDIR /app
# Where Cortex's discovery finds it without ORT_LIBRARY_PATH: .venv's onnxruntime under the working directory.
COPY --from=onnxruntime /out/ /app/.venv/lib/python3.11/site-packages/onnxruntime/capi/
COPY models ./models
RUN mkdir -p /app/data && chown cortex:cortex /app/data
ARG BUILD_SHA=unknown
ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:/app/data/cortex.db \
    BUILD_SHA=${BUILD_SHA}
USER 10001:10001
EXPOSE 8000
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["curl", "-fs", "http://127.0.0.1:8000/health"]
ENTRYPOINT ["cortex"]
CMD ["serve"]
