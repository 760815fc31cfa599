# Berth's container image. The build stage compiles the release binary; the runtime stage is a distroless
# glibc base (no shell, no package manager) holding only that binary, run as the non-root user 65532 with
# its data on the volume /var/lib/berth.
#
#   docker build -t berth .
#   docker run -d --name berth -p 5000:5000 -v berth-data:/var/lib/berth \
#     -e BERTH_OPERATOR_TOKEN=<a long random secret> berth
#
# Configuration is by BERTH_* environment variables (config/berth.toml lists them all), or a file given
# with BERTH_CONFIG. Both base images are build arguments, to pin them by digest or take them from a
# mirror; keep the two on the same Debian release (the binary links that release's glibc). Nothing here
# needs BuildKit: the classic builder (DOCKER_BUILDKIT=0) builds it too, and tests/e2e/container.sh builds
# this file with local stand-ins for both bases.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# The release profile keeps line tables for backtraces (about 80 MB of binary); the image drops them at
# link time (about 15 MB). Build with --build-arg CARGO_PROFILE_RELEASE_STRIP=none to keep them.
ARG CARGO_PROFILE_RELEASE_STRIP=debuginfo
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && mkdir -p /out/data \
 && cp target/release/berth /out/berth

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="Berth" \
      org.opencontainers.image.description="A self-hosted, multi-tenant container registry (OCI distribution v1.1)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/berth /usr/local/bin/berth
# The data folder belongs to the runtime user; a new named volume mounted there starts with this owner.
COPY --from=build --chown=65532:65532 /out/data /var/lib/berth
USER 65532:65532
WORKDIR /var/lib/berth
ENV BERTH_DATA_DIR=/var/lib/berth \
    BERTH_HTTP_BIND=0.0.0.0:5000
VOLUME /var/lib/berth
EXPOSE 5000
# `berth healthcheck` GETs /healthz on the port of BERTH_HTTP_BIND and exits 0 only on 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["berth", "healthcheck"]
ENTRYPOINT ["berth"]
CMD ["serve"]
