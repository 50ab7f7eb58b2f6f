# The tarsier image, built from source: `docker build -t tarsier:latest .`
# Base images are build arguments. On a machine without a registry, build the binary on the host and use
# deploy/Dockerfile.prebuilt instead: scripts/image.sh does both steps (docs/operating.md).
ARG BUILDER=rust:1-bookworm
ARG RUNTIME=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
# build.rs lays out the functions listed in link/hot-symbols.txt first: a smaller idle RSS.
COPY link link
COPY src src
COPY plugins plugins
# Cargo.toml declares the benches, so their sources must be there for cargo to read the manifest.
COPY benches benches
RUN cargo build --release --locked --bin tarsier && strip target/release/tarsier

FROM ${RUNTIME}
COPY --from=build /src/target/release/tarsier /usr/local/bin/tarsier
COPY scenarios /scenarios
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/tarsier"]
CMD ["agent", "--listen=0.0.0.0:8080", "--service-listen=0.0.0.0:8081"]
