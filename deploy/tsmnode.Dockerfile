# A TSM server node (cmd/tsmnode) as a static binary on distroless, non-root, fit for a
# read-only root file system. Build from the repository root:
#   docker build -f deploy/tsmnode.Dockerfile -t sharevault/tsmnode .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/tsmnode ./cmd/tsmnode

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tsmnode /tsmnode
# The database lives on a volume; the node key comes from a secret (or is made on the
# volume at first start); the configuration names both (TSMNODE_CONFIG or TSMNODE_*).
VOLUME /data
EXPOSE 9001
USER nonroot:nonroot
ENTRYPOINT ["/tsmnode"]
