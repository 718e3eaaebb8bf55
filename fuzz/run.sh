#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for SECONDS (default 30), with the dictionary in
# dicts/ where there is one. Stops at the first finding: its input is kept under
# artifacts/<target>/ and `cargo +nightly fuzz run <target> <that file>` replays it.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
log="${TMPDIR:-/tmp}/group-service-fuzz.log"
cargo +nightly fuzz build -O
for target in $(cargo +nightly fuzz list); do
  args=(-max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1)
  if [ -f "dicts/$target.dict" ]; then
    args+=(-dict="dicts/$target.dict")
  fi
  if ! cargo +nightly fuzz run -O "$target" -- "${args[@]}" >"$log" 2>&1; then
    echo "fuzz target $target found an input that breaks its property:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cover=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  echo "fuzz $target: ${runs:-?} inputs in ${secs} s, ${cover:-cov: ?}, no finding"
done
