#!/usr/bin/env bash
# bench/rpz.sh: how fast taproot and Unbound load a big response policy
# zone, and how much memory it takes them (issue 25, part 7).
#
#   generate an RPZ of NAMES triggers (exact and wildcard, mostly CNAME .)
#   NSD serves a fake root on $NET.1:53 (both resolvers get hints naming it;
#     neither needs it to answer a blocked name, but neither starts without)
#   for each of taproot, Unbound (module-config "respip iterator", rpz:):
#     start it, poll a listed name every 20 ms until it answers NXDOMAIN
#     (bounded), the time from process start to that answer is the load
#     time; then VmRSS; then dig confirms the answer and the process stops
#   print both, and the ratios taproot/Unbound
#
# Usage: bench/rpz.sh                  (root: NSD listens on port 53)
#        bench/rpz.sh generate N FILE  (only write the RPZ file; compare.sh RPZ=N uses it)
# Knobs: NAMES (1000000) ROUNDS (1) NET (127.0.8) TAPROOT_PORT UNBOUND_PORT
#        SERVER_CPU (1) SKIP_BUILD=1 KEEP=1 BENCH_TAPROOT_BIN=path
#
# All traffic stays on loopback. Every process started here runs in its own
# session and is killed on exit.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# generate N FILE: an RPZ with origin block.rpz. and N triggers:
#   80 % exact  d<i>.b<i%5000>.com.        CNAME .      (3 labels)
#    5 % exact  n<i>.b<i%5000>.com.        CNAME *.     (NODATA)
#   10 % wild   *.w<i>.net.                CNAME .      (base of 2 labels)
#    5 % wild   *.z<i>.t<i%100>.org.       CNAME .      (base of 3 labels)
# The last name, d<N-1 rounded>..., is the one the load time waits for.
generate() {
    local n=$1 out=$2
    awk -v n="$n" 'BEGIN {
        print "$TTL 300"
        print "@ SOA ns.block.rpz. hostmaster.block.rpz. 1 3600 600 86400 300"
        print "  NS ns.block.rpz."
        for (i = 0; i < n; i++) {
            k = i % 20
            if (k < 16)       printf "d%d.b%d.com CNAME .\n", i, i % 5000
            else if (k == 16) printf "n%d.b%d.com CNAME *.\n", i, i % 5000
            else if (k < 19)  printf "*.w%d.net CNAME .\n", i
            else              printf "*.z%d.t%d.org CNAME .\n", i, i % 100
        }
    }' >"$out"
}

# The last exact NXDOMAIN trigger of a generated file of N names.
probe_name() {
    local n=$1 i=$(($1 - 1))
    while [ $((i % 20)) -ge 16 ]; do i=$((i - 1)); done
    echo "d$i.b$((i % 5000)).com."
}

if [ "${1:-}" = generate ]; then
    [ $# = 3 ] || { echo "usage: $0 generate N FILE" >&2; exit 2; }
    generate "$2" "$3"
    exit 0
fi

NAMES=${NAMES:-1000000}
ROUNDS=${ROUNDS:-1}
NET=${NET:-127.0.8}
TAPROOT_PORT=${TAPROOT_PORT:-5491}
UNBOUND_PORT=${UNBOUND_PORT:-5492}
SERVER_CPU=${SERVER_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
LOAD_WAIT=${LOAD_WAIT:-120}   # seconds a server may take to answer at all

declare -A PID=()
PGIDS=()
WORK=""

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cleanup() {
    local rc=$? pg
    trap - EXIT
    for pg in ${PGIDS[@]+"${PGIDS[@]}"}; do kill -TERM -- "-$pg" 2>/dev/null || kill -TERM "$pg" 2>/dev/null || true; done
    sleep 0.5
    for pg in ${PGIDS[@]+"${PGIDS[@]}"}; do kill -KILL -- "-$pg" 2>/dev/null || kill -KILL "$pg" 2>/dev/null || true; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

spawn() {
    local name=$1 logfile=$2
    shift 2
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    PID[$name]=$!
    PGIDS+=("$!")
}

stop() {
    local name=$1 pid=${PID[$1]}
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || die "run as root: NSD listens on port 53 (Unbound only queries port 53)"
[[ "$NET" =~ ^127\.[0-9]+\.[0-9]+$ ]] || die "NET=$NET must be a /24 inside 127.0.0.0/8"
PATH="$PATH:/usr/sbin:/sbin"
for t in nsd unbound unbound-checkconf dig python3 taskset setsid; do
    command -v "$t" >/dev/null || die "$t is not installed"
done

if [ "$SKIP_BUILD" = 1 ]; then
    log "SKIP_BUILD=1: using the existing release build"
else
    log "cargo build --release --bins"
    (cd "$REPO" && timeout 3600 cargo build --release --locked --bins) >&2
fi
TAPROOT_BIN="${BENCH_TAPROOT_BIN:-$REPO/target/release/taproot}"
[ -x "$TAPROOT_BIN" ] || die "$TAPROOT_BIN missing"

WORK=$(mktemp -d /tmp/taproot-rpz-bench.XXXXXX)
chmod 755 "$WORK"

log "generating an RPZ of $NAMES names"
generate "$NAMES" "$WORK/block.rpz"
PROBE=$(probe_name "$NAMES")
log "$(wc -l <"$WORK/block.rpz") lines, $(du -h "$WORK/block.rpz" | cut -f1); waiting for $PROBE"

# The fake root: one NSD, the root zone only.
mkdir -p "$WORK/nsd"
cat >"$WORK/nsd/root.zone" <<EOF
\$TTL 86400
.                IN SOA a.root-servers. hostmaster.root-servers. 1 1800 900 604800 86400
.                IN NS  a.root-servers.
a.root-servers.  IN A   $NET.1
EOF
cat >"$WORK/nsd/nsd.conf" <<EOF
server:
  ip-address: $NET.1
  port: 53
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$WORK/nsd"
  zonelistfile: "$WORK/nsd/zone.list"
  xfrdfile: "$WORK/nsd/xfrd.state"
  xfrdir: "$WORK/nsd"
  pidfile: "$WORK/nsd/nsd.pid"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: "."
  zonefile: "root.zone"
EOF
spawn nsd "$WORK/nsd/nsd.log" nsd -d -c "$WORK/nsd/nsd.conf"
for _ in $(seq 100); do
    dig +norec +time=1 +tries=1 -p 53 "@$NET.1" . SOA 2>/dev/null | grep -q 'flags: qr aa' && break
    sleep 0.2
done
dig +norec +time=1 +tries=1 -p 53 "@$NET.1" . SOA | grep -q 'flags: qr aa' || die "NSD does not serve the root: $(cat "$WORK/nsd/nsd.log")"
cat >"$WORK/root.hints" <<EOF
.                 3600000  NS  a.root-servers.
a.root-servers.   3600000  A   $NET.1
EOF

cat >"$WORK/taproot.toml" <<EOF
[server]
listen = ["127.0.0.1:$TAPROOT_PORT"]
threads = 1

[resolver]
root_hints_file = "$WORK/root.hints"
allow_loopback_upstreams = true

[dnssec]
validation = false

[metrics]
listen = ""

[[rpz]]
zone = "block.rpz"
file = "$WORK/block.rpz"
EOF
"$TAPROOT_BIN" check-config -q --config "$WORK/taproot.toml" >/dev/null 2>"$WORK/taproot-check.out" ||
    die "taproot check-config: $(cat "$WORK/taproot-check.out")"

mkdir -p "$WORK/unbound"
cat >"$WORK/unbound/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$UNBOUND_PORT
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  root-hints: "$WORK/root.hints"
  access-control: 127.0.0.0/8 allow
  chroot: ""
  username: ""
  directory: "$WORK/unbound"
  pidfile: "$WORK/unbound/unbound.pid"
  use-syslog: no
  logfile: "$WORK/unbound/unbound.log"
  verbosity: 1
  module-config: "respip iterator"
rpz:
  name: "block.rpz."
  zonefile: "$WORK/block.rpz"
remote-control:
  control-enable: no
EOF
unbound-checkconf "$WORK/unbound/unbound.conf" >"$WORK/unbound-check.out" 2>&1 ||
    die "unbound-checkconf: $(cat "$WORK/unbound-check.out")"

# poll PORT NAME START: asks NAME A every 20 ms (each wait 20 ms, the whole
# at most LOAD_WAIT s) until the answer is NXDOMAIN; prints the seconds
# since START (a time.time() taken just before the server was started).
poll() {
    python3 - "$1" "$2" "$3" "$LOAD_WAIT" <<'EOF'
import socket, struct, sys, time
port, name, start, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
q = struct.pack(">HHHHHH", 0x5250, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00" + struct.pack(">HH", 1, 1)
deadline = start + limit
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.02)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(4096)
        if len(r) >= 4 and r[:2] == q[:2] and r[3] & 0x0F == 3:
            print(f"{time.time() - start:.3f}")
            sys.exit(0)
    except OSError:
        time.sleep(0.02)
    finally:
        s.close()
sys.exit(1)
EOF
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# measure NAME PORT CMD...: start, time to the first NXDOMAIN, RSS, confirm
# with dig, stop; the results in SECS and RSS (run in this shell, not a
# subshell, so that the exit trap knows every process it started).
measure() {
    local name=$1 port=$2 start
    shift 2
    start=$(python3 -c 'import time; print(repr(time.time()))')
    spawn "$name" "$WORK/$name.log" taskset -c "$SERVER_CPU" "$@"
    SECS=$(poll "$port" "$PROBE" "$start") || die "$name never answered $PROBE NXDOMAIN within ${LOAD_WAIT}s: $(tail -5 "$WORK/$name.log")"
    RSS=$(rss_kib "${PID[$name]}")
    dig +time=2 +tries=1 -p "$port" @127.0.0.1 "$PROBE" A | grep -q 'status: NXDOMAIN' ||
        die "dig did not see NXDOMAIN for $PROBE from $name"
    stop "$name"
}

declare -A LOAD_S=() RSS_K=()
for ((r = 0; r < ROUNDS; r++)); do
    measure taproot "$TAPROOT_PORT" "$TAPROOT_BIN" --config "$WORK/taproot.toml"
    log "round $r taproot: ${SECS}s to NXDOMAIN, VmRSS $((RSS / 1024)) MiB"
    LOAD_S[taproot]+="$SECS "
    RSS_K[taproot]+="$RSS "
    measure unbound "$UNBOUND_PORT" unbound -d -c "$WORK/unbound/unbound.conf"
    log "round $r unbound: ${SECS}s to NXDOMAIN, VmRSS $((RSS / 1024)) MiB"
    LOAD_S[unbound]+="$SECS "
    RSS_K[unbound]+="$RSS "
done

python3 - "${LOAD_S[taproot]}" "${RSS_K[taproot]}" "${LOAD_S[unbound]}" "${RSS_K[unbound]}" "$NAMES" <<'EOF'
import statistics, sys
ts, tk, us, uk = ([float(x) for x in a.split()] for a in sys.argv[1:5])
n = int(sys.argv[5])
t_s, u_s = statistics.median(ts), statistics.median(us)
t_k, u_k = statistics.median(tk), statistics.median(uk)
print(f"RPZ of {n} names, medians of {len(ts)} round(s)")
print(f"{'':24}{'taproot':>12}{'unbound':>12}{'ratio':>8}  (goal)")
print(f"{'load to NXDOMAIN, s':24}{t_s:12.2f}{u_s:12.2f}{t_s / u_s:8.2f}  (<= 0.50)")
print(f"{'VmRSS after, MiB':24}{t_k / 1024:12.0f}{u_k / 1024:12.0f}{t_k / u_k:8.2f}  (<= 0.35)")
EOF
