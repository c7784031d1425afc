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
MEDCAD_REQUIRE_SERVERS=1 go test -count=1 -timeout 60m ./...
