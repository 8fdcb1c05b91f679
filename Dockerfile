# syntax=docker/dockerfile:1
# Keyward's container image: one static-enough binary on distroless, as a non-root user, with a
# read-only root filesystem (the only writable place is the data directory, a volume).
#   docker build -t keyward .
#   docker run --read-only -v keyward-data:/var/lib/keyward -p 8443:8443 keyward serve
# See docs/deployment.md.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep rebuilds incremental; the binary is copied out because the target cache mount
# is gone in the next stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p keyward --bin keyward \
    && install -D -m 0755 target/release/keyward /out/keyward
# Distroless has no shell to create the data directory, so it is made here with the owner the
# runtime user needs (65532 is distroless's `nonroot`); Keyward keeps it 0700.
RUN install -d -m 0700 -o 65532 -g 65532 /out/data

# distroless/cc: glibc, libgcc and CA certificates, nothing else (no shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/keyward /usr/local/bin/keyward
COPY --from=builder --chown=65532:65532 /out/data /var/lib/keyward
USER 65532:65532
# Containers listen on every interface; the binary's own defaults are loopback-only.
ENV KEYWARD_DATA_DIR=/var/lib/keyward \
    KEYWARD_LISTEN=0.0.0.0:8443 \
    KEYWARD_GATEWAY_LISTEN=0.0.0.0:8444 \
    KEYWARD_GATEWAY_ADMIN_LISTEN=0.0.0.0:9444
VOLUME ["/var/lib/keyward"]
# 8443: keyward serve; 8444: keyward gateway; 9444: the gateway's admin listener (/healthz, /readyz, /metrics).
EXPOSE 8443 8444 9444
# No HEALTHCHECK: the image has no curl, and orchestrators probe /healthz and /readyz themselves
# (the Helm chart does; docker-compose.yml orders start-up by restarts instead).
ENTRYPOINT ["/usr/local/bin/keyward"]
CMD ["serve"]
