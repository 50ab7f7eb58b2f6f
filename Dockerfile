# A small image with the tarsier binary only.
#   docker build -t tarsier:latest .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY plugins plugins
# The tests and benches are not needed for the binary; empty stand-ins keep cargo's manifest happy.
RUN mkdir -p benches tests && cargo build --release --locked --bin tarsier && strip target/release/tarsier

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tarsier /usr/local/bin/tarsier
COPY scenarios /scenarios
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/tarsier"]
CMD ["agent", "--listen=0.0.0.0:8080", "--service-listen=0.0.0.0:8081"]
