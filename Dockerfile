# syntax=docker/dockerfile:1
# ambit's container image: a static binary on distroless/static, running as
# an unprivileged user. Build: docker build --build-arg VERSION=$(git describe --tags --always) -t ambit .
# Kubernetes manifests that run it: deploy/k8s (README "Scaling").

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: a static binary that needs no libc in the image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ambit ./cmd/ambit

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ambit /usr/local/bin/ambit
# 65532 is distroless' "nonroot"; deploy/k8s runs the pods as this uid.
USER 65532:65532
# gRPC (authzed v1 API and cluster calls), HTTP (/healthz, /readyz,
# /metrics, AuthZEN), raft.
EXPOSE 50051 8080 50061
VOLUME ["/data"]
ENV AMBIT_DATA_DIR=/data
ENTRYPOINT ["/usr/local/bin/ambit"]
CMD ["serve", "--grpc-addr", "0.0.0.0:50051", "--http-addr", "0.0.0.0:8080", "--raft-addr", "0.0.0.0:50061"]
