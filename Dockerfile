# Build stage: the Swift toolchain plus the C libraries idemproxy links against.
FROM swift:6.1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
RUN swift build -c release --product idemproxy --static-swift-stdlib \
 && cp "$(swift build -c release --show-bin-path)/idemproxy" /idemproxy

# Runtime stage: only the shared libraries the binary needs, running as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home idemproxy
COPY --from=build /idemproxy /usr/local/bin/idemproxy
COPY config/idemproxy.yaml /etc/idemproxy/idemproxy.yaml
USER idemproxy
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/idemproxy"]
CMD ["serve", "--config", "/etc/idemproxy/idemproxy.yaml"]
