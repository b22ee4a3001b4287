#!/usr/bin/env bash
# Everything CI runs: the unit suite (fast), then the real-host suite (a Debian VM under qemu), with one
# closing line that adds both up. Both suites run even when the first fails, so one run shows every failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
npm test 2>&1 | tee "$log"
unit=${PIPESTATUS[0]}
npm run test:e2e 2>&1 | tee -a "$log"
e2e=${PIPESTATUS[0]}
awk '/^tests: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4; s += $6 }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
[ "$unit" -eq 0 ] && [ "$e2e" -eq 0 ]
