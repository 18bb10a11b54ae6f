#!/usr/bin/env bash
# Runs benches/go: tokio's seven scheduler workloads and the idle-goroutine
# memory figure on Go's runtime, for the comparison in docs/BENCHMARKS.md.
# Not part of CI. Installs Debian's Go (1.19 on bookworm) when `go` is missing.
#
# Usage: bash scripts/bench_go.sh [extra `go test` flags, e.g. -count=5]
set -euo pipefail
cd "$(dirname "$0")/../benches/go"

if ! command -v go >/dev/null; then
    echo "go not found: installing Debian's golang-go" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update
    $sudo_cmd apt-get install -y golang-go
fi
go version

export GOMAXPROCS="${GOMAXPROCS:-$(nproc)}"
echo "GOMAXPROCS=$GOMAXPROCS"

# The seven workloads: go test's default benchtime (1 s per benchmark).
go test -run '^$' -bench '^Benchmark(SpawnMany|YieldMany|PingPong|ChainedSpawn)' "$@"

# Idle memory: one sample per fresh process (stacks freed in a process are
# reused, so repeated runs in one process would measure nothing), median of 5.
bin="$(mktemp -d)/sched.test"
go test -c -o "$bin"
samples=()
for _ in 1 2 3 4 5; do
    samples+=("$("$bin" -test.run '^$' -test.bench '^BenchmarkIdleGoroutineMemory$' -test.benchtime=1x \
        | awk '/B\/task/ { print $(NF-1) }')")
done
rm -rf "$(dirname "$bin")"
sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
echo "idle goroutine memory, 100000 goroutines: median $(echo "$sorted" | sed -n 3p) B/task (runs: $(echo $sorted))"
