#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries that envtest needs from Go modules, because the
# usual prebuilt download (setup-envtest) is unreachable in offline hospital CI and on our build
# machines. The binaries are cached outside the repository, keyed by version, so only the first
# run pays for the build (about 10 minutes cold on 2 cores). Prints the asset directory on stdout;
# point KUBEBUILDER_ASSETS at it.
#
# Usage: hack/envtest-assets.sh            build if missing, print the directory
#        K8S_VERSION=v1.36.3 hack/envtest-assets.sh
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
# Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
STAGING_VERSION="v0${K8S_VERSION#v1}"
CACHE_ROOT="${MEDSEG_ENVTEST_CACHE:-$(go env GOCACHE)/../medseg-envtest}"
DEST="${CACHE_ROOT}/${K8S_VERSION}"

log() { echo "envtest-assets: $*" >&2; }

if [[ -x "${DEST}/kube-apiserver" && -x "${DEST}/etcd" ]]; then
  (cd "${DEST}" && pwd)
  exit 0
fi

mkdir -p "${CACHE_ROOT}"
# One builder at a time: parallel `make test` invocations wait instead of racing.
exec 9>"${CACHE_ROOT}/.lock"
flock 9
if [[ -x "${DEST}/kube-apiserver" && -x "${DEST}/etcd" ]]; then
  (cd "${DEST}" && pwd)
  exit 0
fi

WORK="$(mktemp -d "${CACHE_ROOT}/build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN=local

log "resolving k8s.io/kubernetes@${K8S_VERSION}"
info="$(cd "${WORK}" && GOFLAGS= go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")"
k8s_gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"${info}")"
k8s_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"${info}")"
[[ -f "${k8s_gomod}" && -d "${k8s_dir}" ]] || { log "could not resolve kubernetes module"; exit 1; }

go_line="$(grep -m1 '^go ' "${k8s_gomod}")"
godebug_line="$(grep -m1 '^godebug ' "${k8s_gomod}" || true)"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "${k8s_gomod}")"
[[ -n "${etcd_version}" ]] || { log "kubernetes go.mod names no etcd server version"; exit 1; }

# --- kube-apiserver -------------------------------------------------------------------------
mkdir -p "${WORK}/apiserver"
{
  echo "module medseg.local/envtest-apiserver"
  echo
  echo "${go_line}"
  [[ -n "${godebug_line}" ]] && echo "${godebug_line}"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  echo "replace ("
  # Every staging module kubernetes replaces with a local path becomes the published version.
  sed -n '/^replace (/,/^)/p' "${k8s_gomod}" | awk '$2=="=>" && $3 ~ /^\.\/staging/ {print "\t" $1 " => " $1 " '"${STAGING_VERSION}"'"}'
  echo ")"
} >"${WORK}/apiserver/go.mod"
cp "${k8s_dir}/cmd/kube-apiserver/apiserver.go" "${WORK}/apiserver/main.go"
chmod u+w "${WORK}/apiserver/main.go"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
vpkg="k8s.io/component-base/version"
ldflags="-s -w -X ${vpkg}.gitVersion=${K8S_VERSION} -X ${vpkg}.gitMajor=1 -X ${vpkg}.gitMinor=${minor} -X ${vpkg}.gitTreeState=clean"
log "building kube-apiserver ${K8S_VERSION} (first run only; several minutes)"
(cd "${WORK}/apiserver" && go mod tidy >&2 && CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${WORK}/out/kube-apiserver" . >&2)

# --- etcd -----------------------------------------------------------------------------------
mkdir -p "${WORK}/etcd"
cat >"${WORK}/etcd/go.mod" <<GOMOD
module medseg.local/envtest-etcd

${go_line}

require go.etcd.io/etcd/server/v3 ${etcd_version}
GOMOD
cat >"${WORK}/etcd/main.go" <<'GO'
// Command etcd runs the etcd server for envtest.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
log "building etcd ${etcd_version}"
(cd "${WORK}/etcd" && go mod tidy >&2 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${WORK}/out/etcd" . >&2)

"${WORK}/out/kube-apiserver" --version >&2
rm -rf "${DEST}.tmp" && mv "${WORK}/out" "${DEST}.tmp" && rm -rf "${DEST}" && mv "${DEST}.tmp" "${DEST}"
(cd "${DEST}" && pwd)
