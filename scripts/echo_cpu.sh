#!/usr/bin/env bash
# Server CPU per message for the echo benchmark (benches/echo.rs): runs one
# server (gort, tokio or go) under `perf stat`, loads it with the bench's
# one-thread mio client, and prints per message: server CPU (task-clock, and
# user/sys from the kernel's accounting), client CPU, context switches,
# futex and epoll_wait calls. On a 2-core machine shared by client and
# server, server CPU per message is what decides throughput.
#
# Usage: bash scripts/echo_cpu.sh SERVER CONNS [SECS] [ROUNDS]
#   SERVER: gort | tokio | go    (go needs `go` installed, as for the bench)
# Needs `perf` with syscall tracepoints (perf_event_paranoid <= 1 or root).
set -euo pipefail
server=${1:?usage: echo_cpu.sh gort|tokio|go CONNS [SECS] [ROUNDS]}
conns=${2:?usage: echo_cpu.sh gort|tokio|go CONNS [SECS] [ROUNDS]}
secs=${3:-3}
rounds=${4:-1}
case "$server" in gort | tokio | go) ;; *) echo "unknown server '$server' (gort, tokio or go)" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
bin=$(cargo bench --bench echo --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the echo bench" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The bench prints 0.5 s of warm-up before its measured SECS; server CPU is
# counted over both, so messages are rate * (SECS + 0.5).
warmup=0.5
events=task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait
printf '%-6s %5s %9s %7s %8s %8s %8s %8s %8s %7s %7s %7s\n' server conns msgs/s p99_us srv_us cli_us user_us sys_us cswitch futex epoll loadavg
for _ in $(seq "$rounds"); do
    mkfifo "$tmp/in"
    /usr/bin/time -f '%U %S' -o "$tmp/time" \
        perf stat -x, -e "$events" -o "$tmp/srv" -- "$bin" --server "$server" <"$tmp/in" >"$tmp/addr" &
    pid=$!
    exec 9>"$tmp/in"
    for _ in $(seq 200); do [ -s "$tmp/addr" ] && break; sleep 0.05; done
    [ -s "$tmp/addr" ] || { echo "server did not print its address" >&2; exit 1; }
    out=$(perf stat -x, -e task-clock -o "$tmp/cli" -- "$bin" --client "$(head -1 "$tmp/addr")" "$conns" "$secs")
    exec 9>&-
    wait "$pid"
    rm -f "$tmp/in"
    python3 - "$server" "$conns" "$secs" "$warmup" "$out" "$tmp" <<'PY'
import os, sys
server, conns, secs, warmup, out, tmp = sys.argv[1:]
rate, p50, p99 = map(float, out.split())
def counts(path):
    d = {}
    for line in open(path):
        f = line.strip().split(',')
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            d[f[2]] = float(f[0])
    return d
srv, cli = counts(os.path.join(tmp, 'srv')), counts(os.path.join(tmp, 'cli'))
user, sys_ = map(float, open(os.path.join(tmp, 'time')).read().split())
msgs = rate * (float(secs) + float(warmup))
per = lambda x: x / msgs
epoll = srv.get('syscalls:sys_enter_epoll_wait', 0) + srv.get('syscalls:sys_enter_epoll_pwait', 0)
print('%-6s %5s %9.0f %7.0f %8.3f %8.3f %8.3f %8.3f %8.4f %7.4f %7.4f %7s' % (
    server, conns, rate, p99, per(srv['task-clock'] * 1e3), per(cli['task-clock'] * 1e3),
    per(user * 1e6), per(sys_ * 1e6), per(srv['context-switches']),
    per(srv['syscalls:sys_enter_futex']), per(epoll), open('/proc/loadavg').read().split()[0]))
PY
done
