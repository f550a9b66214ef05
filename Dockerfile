# The integrations binary for docker-compose and production: worker, serve,
# migrate and the operator commands. The dev command is for a workstation
# (it runs the Temporal dev server) and is not meant for this image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/integrations ./cmd/integrations && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/integrations /usr/local/bin/integrations
# A writable home for the sandbox CRM's state volume.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
ENTRYPOINT ["/usr/local/bin/integrations"]
