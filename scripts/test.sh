#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what the tests
# need, checks formatting, vets, and runs every test with the real servers
# required (MEDCAD_REQUIRE_SERVERS=1 turns a missing server into a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

./scripts/test-deps.sh

unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# Everything builds and vets (test files too) for macOS and Windows, whose
# file system code differs from Linux's (gitops/cas *_other.go).
for target in darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
  os="${target%/*}" arch="${target#*/}"
  GOOS="$os" GOARCH="$arch" go build ./...
  GOOS="$os" GOARCH="$arch" go vet ./...
done
MEDCAD_REQUIRE_SERVERS=1 go test -count=1 -timeout 60m ./...
