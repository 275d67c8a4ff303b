# syntax=docker/dockerfile:1
#
# The cistern image: the one binary on a distroless base (glibc, CA
# certificates, no shell).
#
#   docker build -t cistern .
#   docker run -p 9000:9000 -p 9001:9001 -v cistern-data:/data cistern
#
# The builder runs on the build machine's own architecture and cross-compiles
# for the image's (TARGETARCH), so a multi-arch build does not run rustc under
# emulation. docs/DEPLOY.md explains the settings.

# Keep in step with `rust-version` in Cargo.toml.
ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS builder
ARG TARGETARCH
ARG BUILDARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# Choose the Rust target for the image's architecture and write the cargo
# settings for it to /build/target-env, which every build step sources. A C
# cross compiler is needed only when the image's architecture differs from the
# build machine's: ring and the bundled SQLite are C.
# DL3008 (pin apt versions) is off here: the cross toolchain follows the
# builder image's Debian release, and pinned versions break the build at
# every Debian point release.
# hadolint ignore=DL3008
RUN case "${TARGETARCH}" in \
        amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; gccpkg=gcc-x86-64-linux-gnu ;; \
        arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; gccpkg=gcc-aarch64-linux-gnu ;; \
        *) echo "unsupported architecture: ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && echo "export CARGO_BUILD_TARGET=${triple}" > /build/target-env \
    && if [ "${TARGETARCH}" != "${BUILDARCH}" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends "${gccpkg}" "libc6-dev-${TARGETARCH}-cross" \
        && rm -rf /var/lib/apt/lists/* \
        && rustup target add "${triple}" \
        && under="${triple//-/_}" \
        && { \
            echo "export CARGO_TARGET_${under^^}_LINKER=${gnu}-gcc"; \
            echo "export CC_${under}=${gnu}-gcc"; \
            echo "export AR_${under}=${gnu}-ar"; \
        } >> /build/target-env; \
    fi \
    && cat /build/target-env

# No debug line tables in the image's binary (Cargo.toml keeps them for
# builds from source): 37 MB instead of 176 MB. A panic still names its
# file and line, and a backtrace its functions.
ENV CARGO_PROFILE_RELEASE_DEBUG=false

# Dependencies first, with an empty crate: this layer is rebuilt only when
# Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && . /build/target-env \
    && cargo build --release --locked \
    && rm -rf src

# Everything the crate compiles in: askama templates, the console's assets,
# the SQL migrations, and the build script that records the commit.
COPY build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY assets ./assets

# The build context has no .git, so the commit for /version comes from here
# (the release workflow passes the tagged commit).
ARG CISTERN_GIT_COMMIT=unknown
# touch: the copied sources keep their own modification times, which may be
# older than the empty crate built above.
RUN . /build/target-env \
    && touch src/main.rs src/lib.rs \
    && CISTERN_GIT_COMMIT="${CISTERN_GIT_COMMIT}" cargo build --release --locked \
    && install -D -m 0755 "target/${CARGO_BUILD_TARGET}/release/cistern" /out/cistern \
    && mkdir -p /out/rootfs \
    && mkdir -m 0750 /out/rootfs/data


# glibc, libgcc and CA certificates, no shell and no package manager.
# TARGETPLATFORM is buildx's default here (DL3065); Podman 4 needs it spelled
# out, or it looks for this base on the builder stage's platform.
# hadolint ignore=DL3065
FROM --platform=$TARGETPLATFORM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="cistern" \
      org.opencontainers.image.description="Self-hosted S3-compatible file service" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/cistern /usr/local/bin/cistern
# The data directory, owned by the user that runs Cistern (copied as an entry
# of /out/rootfs so that the directory itself takes the owner).
COPY --from=builder --chown=10001:10001 /out/rootfs/ /

# Settings are CISTERN_* variables (cistern serve --help lists them all).
# Inside a container the listeners must take connections from outside it.
ENV CISTERN_DATA_DIR=/data \
    CISTERN_S3_LISTEN=0.0.0.0:9000 \
    CISTERN_WEB_LISTEN=0.0.0.0:9001

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# 9000: the S3 API; 9001: the web port (console, JSON API, health, metrics).
EXPOSE 9000 9001

# GETs /health/ready on the web port; exit 0 on 200, 1 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["cistern", "healthcheck"]

ENTRYPOINT ["cistern"]
CMD ["serve"]
