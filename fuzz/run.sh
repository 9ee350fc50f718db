#!/usr/bin/env bash
# Run every fuzz target for a bounded time, one after another (docs/FUZZING.md).
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz; without them it says so and exits 0: the
# stable replay of the corpora (tests/fuzz_corpus.rs, part of `make test`) is then what runs.
# New inputs the fuzzers find go to a scratch corpus, never into fuzz/corpus/; a crash is
# written to fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain: fuzzers not run; the stable corpus replay (tests/fuzz_corpus.rs) ran in make test"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz not installed: fuzzers not run; the stable corpus replay (tests/fuzz_corpus.rs) ran in make test"
    exit 0
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
tdir=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
scratch=$(mktemp -d /tmp/darkport-fuzz-corpus.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
t0=$(date +%s)
set +e
timeout "${FUZZ_BUILD_TIMEOUT:-3600}" cargo +nightly fuzz build -s none --target-dir "$tdir"
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
    echo "fuzz: building the targets took over ${FUZZ_BUILD_TIMEOUT:-3600}s: fuzzers not run; the stable corpus replay ran in make test"
    exit 0
elif [ "$rc" -ne 0 ]; then
    echo "fuzz: building the targets failed (exit $rc)"
    exit "$rc"
fi
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - t0 ))s"
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run -s none --target-dir "$tdir" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: target $t FAILED (input kept under fuzz/artifacts/$t/)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $t ${secs}s, $runs runs, $cov, no crash"
done
