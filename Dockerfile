# syntax=docker/dockerfile:1
# Build stage: scripts/build installs the C libraries idemproxy links against (libhiredis,
# libssl, pkg-config) and runs the release build; it prints the binary's path last.
FROM swift:6.1-bookworm AS build
WORKDIR /src
COPY scripts ./scripts
COPY Package.swift ./
COPY Sources ./Sources
# SwiftPM checks that every declared target's directory exists, test targets included; only
# the idemproxy product is built.
COPY Tests ./Tests
RUN bin="$(scripts/build --static-swift-stdlib | tail -n 1)" \
 && test -x "$bin" \
 && cp "$bin" /idemproxy

# Runtime stage: only the shared libraries the binary needs, running as a non-root user
# (numeric, so Kubernetes' runAsNonRoot can verify it).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 idemproxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home idemproxy
COPY --from=build /idemproxy /usr/local/bin/idemproxy
COPY config/idemproxy.yaml /etc/idemproxy/idemproxy.yaml
USER 10001:10001
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/idemproxy"]
CMD ["serve", "--config", "/etc/idemproxy/idemproxy.yaml"]
