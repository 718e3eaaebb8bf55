# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as a non-root user.
# SQLite is compiled in and there is no libpq: the runtime image needs only the CA roots.
# Secrets can come from mounted files: DATABASE_URL_FILE, GROUP_SERVICE_JWT_SECRET_FILE,
# GROUP_SERVICE_PAGE_TOKEN_KEY_FILE, NATS_URL_FILE (README.md, Configuration).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Build the dependencies first so that source changes reuse their layer.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
# Every target Cargo.toml declares needs a file, even the ones this image does not build.
# Cargo.toml's targets: the lib, the bins group-service, group-load and bare-health, the
# tests integration, reliability and topology, the bench loadgen.
RUN mkdir -p src tests/integration tests/reliability tests/topology loadtest/loadtool \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && echo '' > tests/integration/main.rs \
    && echo '' > tests/reliability/main.rs \
    && echo '' > tests/topology/main.rs \
    && echo 'fn main() {}' > loadtest/loadgen.rs \
    && echo 'fn main() {}' > loadtest/loadtool/main.rs \
    && echo 'fn main() {}' > loadtest/bare_health.rs \
    && cargo build --release --locked --bin group-service \
    && rm -rf src tests loadtest
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
COPY loadtest ./loadtest
# Make cargo see the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin group-service

FROM debian:bookworm-slim
# CA roots: a JWKS URL over HTTPS is verified against the system's certificates, which the
# slim image does not ship.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin groups \
    && mkdir -p /data && chown groups /data
COPY --from=build /src/target/release/group-service /usr/local/bin/group-service
USER 10001
WORKDIR /data
# MALLOC_ARENA_MAX: glibc's malloc gives threads up to 8 arenas per core; SQLite's statements
# run on tokio's blocking threads, and their arenas took the server's RSS from 90 to 147 MiB
# in the benchmark (docs/decisions.md). Raise it on machines with many cores.
ENV GROUP_SERVICE_LISTEN=0.0.0.0:50051 \
    GROUP_SERVICE_METRICS_LISTEN=0.0.0.0:9090 \
    GROUP_SERVICE_DATA_DIR=/data \
    GROUP_SERVICE_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2
VOLUME ["/data"]
# gRPC (and gRPC-Web), then Prometheus metrics (GET /metrics).
EXPOSE 50051 9090
# grpc.health.v1 Check on the listen address (0.0.0.0 dialed as 127.0.0.1): SERVING only
# while the database answers. The start period covers the migrations and the first probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/group-service", "health", "--timeout-ms", "2000"]
ENTRYPOINT ["/usr/local/bin/group-service"]
CMD ["serve"]
