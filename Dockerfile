# pgveil container image: build with cgo (pg_query_go compiles PostgreSQL's
# parser in C), run as a non-root user on a slim glibc base with no shell.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t pgveil .
#   docker run -p 6432:6432 -p 9187:9187 \
#     -v /srv/pgveil:/etc/pgveil:ro -e PGVEIL_SERVICE_URL=... pgveil
#
# The config is read from /etc/pgveil/config.yaml (mount it, with the master
# key file if keysource.local.key_file names one; the files must be readable
# by uid 65532). See docs/OPERATING.md, "Container".

# The build and runtime bases are the same Debian release (12, bookworm):
# the binary links against the build stage's glibc.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The Makefile's `build` target, word for word (integration/ops_dockerfile_test.go checks it).
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o bin/pgveil ./cmd/pgveil

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/bin/pgveil /usr/local/bin/pgveil
# Listen on every interface inside the container (the config's defaults are
# loopback); flags and PGVEIL_* variables override the config file.
ENV PGVEIL_LISTEN=0.0.0.0:6432 \
    PGVEIL_ADMIN_LISTEN=0.0.0.0:9187
USER 65532:65532
EXPOSE 6432 9187
# No curl in the image: the binary checks its own /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/pgveil", "healthcheck", "--url", "http://127.0.0.1:9187/healthz"]
ENTRYPOINT ["/usr/local/bin/pgveil"]
CMD ["serve", "-c", "/etc/pgveil/config.yaml"]
