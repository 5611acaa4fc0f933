#!/bin/bash
# Builds the libFuzzer targets with clang and runs each for a bounded time.
# Usage: tests/fuzz/run-fuzzers.sh BUILD_DIR [SECONDS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
seconds=${2:-30}
out="$build/fuzz"
mkdir -p "$out"

flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DBG_COMPILATION -I$build -I$top -I$top/bg-glib $(pkg-config --cflags libsoup-3.0)"
libs="$(pkg-config --libs libsoup-3.0)"

for target in retry-after content-range headers; do
  echo "== fuzz-$target for ${seconds} s =="
  # shellcheck disable=SC2086
  clang $flags -o "$out/fuzz-$target" "$here/fuzz-$target.c" \
    "$top/bg-glib/bg-http.c" "$top/bg-glib/bg-error.c" $libs
  mkdir -p "$out/corpus-$target"
  cp "$here"/corpus/"$target"/* "$out/corpus-$target/" 2>/dev/null || true
  ASAN_OPTIONS=detect_leaks=0 "$out/fuzz-$target" -max_total_time="$seconds" -max_len=4096 \
    -print_final_stats=1 "$out/corpus-$target" 2>&1 | tail -n 12
done
echo "fuzzers: no crash"
