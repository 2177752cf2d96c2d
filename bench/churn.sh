#!/usr/bin/env bash
# bench/churn.sh: taproot's RSS under cache churn, against its cache budget
# (issue 23). N distinct cold names under one wildcard (so every name is a
# new cache entry and the cache evicts all the time) are asked at Q
# outstanding through a cache of MB MiB; VmRSS is read before and 3 s after.
#
#   dnsperf (core 0) ──► taproot :5381 (CPUS) ──► NSD .  lab.  free.lab. (127.0.8.1-3, port 5300)
#
# Loopback only; taproot gets root hints for the fake root, never the real
# ones. Knobs: N (900000) Q (200) MB (16) THREADS (0 = one UDP worker per
# core) CPUS (0,1) BIN (target/release/taproot). Needs nsd and dnsperf.
set -euo pipefail
N=${N:-900000}
Q=${Q:-200}
MB=${MB:-16}
THREADS=${THREADS:-0}
CPUS=${CPUS:-0,1}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$REPO/target/release/taproot}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d /tmp/taproot-churn.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

nsd_for() { # ip origin zone-text
    local dir="$WORK/nsd-$1"
    mkdir -p "$dir"
    printf '%b' "$3" >"$dir/z.zone"
    cat >"$dir/nsd.conf" <<EOF
server:
  ip-address: $1
  port: 5300
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$dir"
  zonelistfile: "$dir/zl"
  xfrdfile: "$dir/xfrd"
  xfrdir: "$dir"
  pidfile: "$dir/nsd.pid"
  server-count: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$2"
  zonefile: "z.zone"
EOF
    setsid nsd -d -c "$dir/nsd.conf" >"$dir/log" 2>&1 &
    PIDS+=("$!")
}
nsd_for 127.0.8.1 . '$TTL 86400\n. IN SOA a.root. h.root. 1 1800 900 604800 86400\n. IN NS a.root.\na.root. IN A 127.0.8.1\nlab. IN NS ns.lab.\nns.lab. IN A 127.0.8.2\n'
nsd_for 127.0.8.2 lab. '$ORIGIN lab.\n$TTL 86400\n@ IN SOA ns h 1 1800 900 604800 600\n@ IN NS ns\nns IN A 127.0.8.2\nfree IN NS ns.free\nns.free IN A 127.0.8.3\n'
nsd_for 127.0.8.3 free.lab. '$ORIGIN free.lab.\n$TTL 86400\n@ IN SOA ns h 1 1800 900 604800 600\n@ IN NS ns\nns IN A 127.0.8.3\n* IN A 198.18.255.2\n'
printf '.  3600000 NS a.root.\na.root. 3600000 A 127.0.8.1\n' >"$WORK/hints"
cat >"$WORK/taproot.toml" <<EOF
[server]
listen = ["127.0.0.1:5381"]
threads = $THREADS
[resolver]
root_hints_file = "$WORK/hints"
upstream_port = 5300
allow_loopback_upstreams = true
[dnssec]
validation = false
[ratelimit]
qps = 0
[cache]
size_mb = $MB
[metrics]
listen = "127.0.0.1:5382"
EOF
for i in $(seq 50); do dig +short +time=1 +tries=1 -p 5300 @127.0.8.3 ready.free.lab A | grep -q . && break; sleep 0.2; done
setsid taskset -c "$CPUS" "$BIN" --config "$WORK/taproot.toml" >"$WORK/taproot.log" 2>&1 &
TP=$!
PIDS+=("$TP")
for i in $(seq 50); do dig +short +time=1 +tries=1 -p 5381 @127.0.0.1 warm.free.lab A | grep -q . && break; sleep 0.2; done
sleep 1
rss() { awk '/VmRSS/ { print $2 }' "/proc/$TP/status"; }
r0=$(rss)
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "c%d.free.lab. A\n", i }' >"$WORK/names.txt"
timeout 600 taskset -c 0 dnsperf -s 127.0.0.1 -p 5381 -d "$WORK/names.txt" -n 1 -q "$Q" -t 5 -l 540 >"$WORK/dnsperf.out" 2>&1
sleep 3
r1=$(rss)
grep -E "Queries completed|Response codes|Queries per second" "$WORK/dnsperf.out"
echo "RSS ${r0} -> ${r1} KiB: $(( (r1 - r0) / 1024 )) MiB over idle for cache.size_mb = $MB ($(awk -v a="$r0" -v b="$r1" -v m="$MB" 'BEGIN { printf "%.2f", (b - a) / 1024 / m }')x)"
curl -s 127.0.0.1:5382/metrics | grep -E '^taproot_cache_(bytes|evictions_total)'
