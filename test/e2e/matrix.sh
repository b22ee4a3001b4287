#!/usr/bin/env bash
# The real-host suite on every Debian release it supports, one after the other (one VM at a time: qemu under TCG
# wants the machine's cores): `npm run test:e2e [-- mocha args]`. E2E_DEBIAN_MATRIX narrows it ("trixie"); each
# release gets its own mocha run with E2E_DEBIAN set, its own cached base image and its own "tests:" line, which
# test/run-all.sh adds up. Every release runs even when one fails.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
read -r -a releases <<<"${E2E_DEBIAN_MATRIX:-bookworm trixie}"
status=0
for release in "${releases[@]}"; do
  printf '[e2e] === Debian %s ===\n' "$release"
  started=$SECONDS
  E2E_DEBIAN=$release npx mocha --config test/e2e/.mocharc.json "$@" || status=1
  printf '[e2e] === Debian %s: %d s ===\n' "$release" "$((SECONDS - started))"
done
exit "$status"
