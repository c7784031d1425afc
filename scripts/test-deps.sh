#!/usr/bin/env bash
# Installs what medcad's tests need on a fresh Debian machine (run as root).
# Skips what is already there, so a rerun takes seconds.
set -euo pipefail

# Debian packages: oracles (dcm2niix, dcmtk, numpy/scipy/scikit-image for
# reference metrics), real components the tests start, and xfsprogs (an XFS
# file system with reflinks for the clone tests).
apt_pkgs=(dcm2niix dcmtk libopenjp2-tools libgdcm-tools python3-numpy python3-scipy python3-skimage python3-nibabel git chromium xfsprogs invesalius-examples python3-pydicom)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go tools at pinned versions, installed into $(go env GOPATH)/bin.
gobin="$(go env GOPATH)/bin"
install_go() { # NAME MODULE@VERSION
  if [[ ! -x "$gobin/$1" ]]; then
    echo "installing $2" >&2
    go install "$2"
  fi
}
install_go versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
install_go act github.com/nektos/act@v0.2.89
install_go ec2-metadata-mock github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0

# Gitea v1.26.0: the GitHub-compatible API the action tests talk to. Its
# go.mod has replace directives, so `go install MODULE@VERSION` refuses
# it; build it from the downloaded module instead (several minutes). The
# tests also read its options/ (locales) from the module cache.
src="$(go mod download -json code.gitea.io/gitea@v1.26.0 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ ! -x "$gobin/gitea" ]]; then
  echo "installing code.gitea.io/gitea@v1.26.0" >&2
  tmp="$(mktemp -d)"
  cp -r "$src/." "$tmp" && chmod -R u+w "$tmp"
  (cd "$tmp" && go build -tags 'sqlite sqlite_unlock_notify' -ldflags '-X main.Version=1.26.0' -o "$gobin/gitea" .)
  rm -rf "$tmp"
fi
