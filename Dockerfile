# syntax=docker/dockerfile:1
# Multi-stage, static, non-root. Build for any platform with
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE .
# The build command and flags are the same as `make build` (checked by a test).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/manager . && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/kubectl-medseg ./cmd/kubectl-medseg

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /manager
COPY --from=build /out/kubectl-medseg /kubectl-medseg
USER 65532:65532
ENTRYPOINT ["/manager"]
