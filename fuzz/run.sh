#!/usr/bin/env bash
# Runs one fuzz target on one core for a while: fuzz/run.sh <target> <seconds>. See README.md.
# -fork=1 runs the target in a child process restarted every few seconds (one core still), so
# that a parser thread ctfix abandoned after its parse deadline does not slow the rest; the
# run stops at the first crash or hang (-timeout is above ctfix's own 5 s parse deadline).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?target: pipeline or trail_body}"
seconds="${2:-600}"
mkdir -p "corpus/$target" "artifacts/$target"
exec cargo +nightly fuzz run -O "$target" "corpus/$target" seeds -- \
  -dict=fuzz.dict -max_len=16384 -timeout=30 -rss_limit_mb=4096 -fork=1 \
  -max_total_time="$seconds" -print_final_stats=1
