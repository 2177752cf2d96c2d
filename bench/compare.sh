#!/usr/bin/env bash
# bench/compare.sh: taproot and Unbound side by side, in one run (issue 9).
#
#   dnsperf (core 0) ──► taproot :5391 ─┐              NSD, port 53, one process per address:
#                    ──► unbound :5392 ─┼─ walk ──►      .           127.0.7.1
#                    ──► floor   :5393  │ (both)          lab.        127.0.7.2
#                        (core 1)       └──────────►      bench.lab.  127.0.7.3  (h*, c*, m* A records)
#
# Phases:
#   1. build taproot (release) and examples/floor.rs, serve the fake tree with NSD
#   2. start taproot, Unbound and the floor responder, each pinned to core 1
#   3. warm both caches with the HOT names
#   4. cache hits, ROUNDS rounds (server order rotated each round): dnsperf at a
#      fixed offered RATE; server CPU µs per answered query from /proc/PID/stat,
#      q/s, losses, latency (p50/p99 from dnsperf -v per-query lines)
#   5. cold misses, each round: COLD never-seen names (their zone's delegation
#      is cached) at COLD_Q outstanding; wall time, names/s, upstream queries
#      per name (counted by NSD itself, see nsd_queries), server CPU per name
#   6. lossy, each round: LOSSY cold names under rrl.lab.'s wildcard, served
#      by an NSD (127.0.7.4) with response rate limiting on (RRL_RATE/s per
#      client /24 and per bucket, all names one wildcard bucket, slip 2: past
#      the limit every second answer is TC=1, the others are dropped), as a
#      real authoritative treats a busy resolver; SERVFAIL share and names/s,
#      and the kernel's UDP receive-buffer errors (nstat UdpRcvbufErrors)
#   7. memory: VmRSS before and after caching MEM more distinct names
#   8. one table: medians over rounds, ratio taproot/unbound, the floor
#
# All traffic stays on loopback: the servers get a root hints file naming the
# fake root on 127.0.7.1, never built-in hints. Every process this script
# starts runs in its own session and is killed on exit (trap). Run as root
# (NSD must listen on port 53: Unbound only queries upstream port 53).
#
# Knobs (environment): ROUNDS RATE SECS HOT COLD COLD_Q LOSSY LOSSY_Q RRL_RATE MEM MEM_Q CACHE_MB NET
# TAPROOT_PORT UNBOUND_PORT FLOOR_PORT METRICS_PORT LOAD_CPU SERVER_CPU
# WORKERS=N: N UDP workers in each server (taproot threads, Unbound
# num-threads, floor threads, each an SO_REUSEPORT socket) and N dnsperf
# threads in the cache-hit runs; give SERVER_CPU and LOAD_CPU N cores each
# (e.g. WORKERS=4 SERVER_CPU=4-7 LOAD_CPU=0-3) on a machine that has them.
# TRACE_KEEP=N: taproot's [trace] keep_failures (0: the miss path records
# no trace; unset: the default 32, every miss recorded for the failure ring).
# BENCH_TAPROOT_BIN=path: run that taproot build instead of target/release's (a
# before/after comparison with an older commit built elsewhere).
# SKIP_BUILD=1 KEEP=1 (keep the work dir with configs and logs). PERF=1 (with
# KEEP=1): record taproot's cold and cache-hit runs with perf into the work dir.
# SHIPPED=1 (with VALIDATE=1): taproot runs config/taproot.toml as shipped,
# changed only where the lab needs it (listen port, one UDP thread as Unbound's
# num-threads 1, the fake root's hints and trust anchor, loopback upstreams,
# the metrics port); rate limit, cache size and the rest stay as shipped.
# RPZ=N: both resolvers load a response policy zone of N triggers
# (bench/rpz.sh generate: exact and wildcard, mostly CNAME ., none of them
# matching a bench.lab. name, several at the hot names' label depths), so
# the hit rows show what a big policy costs names it does not touch
# (taproot [[rpz]]; Unbound module-config "respip ...", rpz: zonefile).
# VALIDATE=1: sign the tree (ldns-signzone, ECDSA P-256, NSEC) and run both
# resolvers validating from the fake root's KSK (taproot [dnssec], Unbound
# module-config "validator iterator"); every answer must then carry AD.
# See README.md.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
HELPER="$HERE/compare_helper.py"

ROUNDS=${ROUNDS:-5}          # rounds of the cache-hit and cold phases
RATE=${RATE:-50000}          # offered queries/s in a cache-hit run
SECS=${SECS:-10}             # seconds per cache-hit run
HOT=${HOT:-5000}             # cached names the cache-hit runs cycle through
COLD=${COLD:-2000}           # never-seen names per cold run (fresh ones each round)
COLD_Q=${COLD_Q:-100}        # queries outstanding in a cold run
LOSSY=${LOSSY:-2000}         # cold names per lossy run, all under rrl.lab.'s wildcard
LOSSY_Q=${LOSSY_Q:-200}      # queries outstanding in a lossy run
RRL_RATE=${RRL_RATE:-200}    # rrl.lab.'s NSD: rrl-ratelimit (NSD's default), rrl-slip 2
MEM=${MEM:-200000}           # distinct names cached in the memory phase (1000000 works too)
WILD=${WILD:-5000}           # names under the signed wildcard in the memory phase, each asked without and with DO
MEM_Q=${MEM_Q:-200}          # queries outstanding while filling
CACHE_MB=${CACHE_MB:-4096}   # taproot's cache.size_mb (Unbound: 2 GiB msg + 2 GiB rrset cache)
NET=${NET:-127.0.7}          # /24 on loopback for the NSD tree (.1 root, .2 lab., .3 bench.lab.)
TAPROOT_PORT=${TAPROOT_PORT:-5391}
UNBOUND_PORT=${UNBOUND_PORT:-5392}
FLOOR_PORT=${FLOOR_PORT:-5393}
METRICS_PORT=${METRICS_PORT:-5394}
LOAD_CPU=${LOAD_CPU:-0}      # dnsperf runs here
SERVER_CPU=${SERVER_CPU:-1}  # taproot, Unbound and the floor run here (one at a time is busy)
WORKERS=${WORKERS:-1}        # UDP workers of each server, and dnsperf threads in a cache-hit run
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
PERF=${PERF:-0}
VALIDATE=${VALIDATE:-0}
TRACE_KEEP=${TRACE_KEEP:-}   # [trace] keep_failures; unset: taproot's default (32)
SHIPPED=${SHIPPED:-0}
RPZ=${RPZ:-0}                # triggers in a response policy zone both load; 0: none
# Hooks for bench/encrypted.sh: lines added to taproot's [server] table
# (with any [server.*] tables after them) and to Unbound's server: clause.
TAPROOT_SERVER_EXTRA=${TAPROOT_SERVER_EXTRA:-}
UNBOUND_EXTRA=${UNBOUND_EXTRA:-}

SERVERS=(taproot unbound floor)
declare -A PORT=([taproot]=$TAPROOT_PORT [unbound]=$UNBOUND_PORT [floor]=$FLOOR_PORT)
declare -A PID=()
PGIDS=()   # process groups to kill on exit
WORK=""

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Cleanup: every child was started with setsid, so its pid is its process
# group; TERM the groups (NSD forks workers), give them 3 s, then KILL.

cleanup() {
    local rc=$? pg alive
    trap - EXIT
    # (A child spawned a moment ago may not have called setsid yet: then its
    # group does not exist, and the pid itself is signalled.)
    for pg in ${PGIDS[@]+"${PGIDS[@]}"}; do kill -TERM -- "-$pg" 2>/dev/null || kill -TERM "$pg" 2>/dev/null || true; done
    for _ in $(seq 30); do
        alive=0
        for pg in ${PGIDS[@]+"${PGIDS[@]}"}; do
            if kill -0 -- "-$pg" 2>/dev/null || kill -0 "$pg" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pg in ${PGIDS[@]+"${PGIDS[@]}"}; do kill -KILL -- "-$pg" 2>/dev/null || kill -KILL "$pg" 2>/dev/null || true; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
            log "work dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# spawn NAME LOG CMD...: CMD in its own session, output to LOG; PID[NAME] is
# its pid. Without job control a background job is not a group leader, so
# setsid execs in place and $! is the server's own pid (checked by the caller).
spawn() {
    local name=$1 logfile=$2
    shift 2
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    PID[$name]=$!
    PGIDS+=("$!")
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s, bounded.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------
# Preflight

need_tools() {
    # Debian package for each tool the script runs.
    local -A pkg=([unbound]=unbound [unbound-checkconf]=unbound [nsd]=nsd [nsd-control]=nsd
        [dnsperf]=dnsperf [dig]=dnsutils [taskset]=util-linux [setsid]=util-linux
        [curl]=curl [python3]=python3 [ldns-keygen]=ldnsutils [ldns-signzone]=ldnsutils)
    local missing=() t
    for t in "${!pkg[@]}"; do
        command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing+=("${pkg[$t]}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
            { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
        # Debian starts the packaged daemons on install; this script runs its own.
        for t in nsd unbound; do
            if printf '%s\n' "${missing[@]}" | grep -qx "$t"; then
                systemctl stop "$t" >/dev/null 2>&1 || true
            fi
        done
    fi
    PATH="$PATH:/usr/sbin:/sbin"
    command -v cargo >/dev/null || die "cargo not found (install Rust)"
}

preflight() {
    [ "$(id -u)" = 0 ] || die "run as root: NSD must listen on port 53 (Unbound only queries upstream port 53)"
    [[ "$NET" =~ ^127\.[0-9]+\.[0-9]+$ ]] || die "NET=$NET must be a /24 inside 127.0.0.0/8"
    [ "$(nproc)" -ge 2 ] || die "needs 2 cores (load generator and server apart)"
    [ "$SHIPPED" = 0 ] || [ "$VALIDATE" = 1 ] || die "SHIPPED=1 needs VALIDATE=1: the shipped config validates"
    local p
    for p in "$TAPROOT_PORT" "$UNBOUND_PORT" "$FLOOR_PORT" "$METRICS_PORT"; do
        if ss -Hltun "sport = :$p" 2>/dev/null | grep -q .; then die "port $p is in use on this machine"; fi
    done
    # A wildcard or same-address listener on port 53 would take NSD's queries.
    if ss -Hlun "sport = :53" 2>/dev/null | awk '{print $4}' | grep -Eq "^(0\.0\.0\.0|\*|\[::\]|${NET//./\\.}\.[1234]):53$"; then
        die "something already listens on port 53 for $NET.1-4 or all addresses: $(ss -Hlunp 'sport = :53' 2>/dev/null | tr '\n' ' ')"
    fi
    HZ=$(getconf CLK_TCK)
}

build() {
    if [ "$SKIP_BUILD" = 1 ]; then
        log "SKIP_BUILD=1: using the existing release build"
    else
        # --example floor rather than --examples: the other examples borrow
        # tests/support and are not needed here. --locked: never touch Cargo.lock.
        log "cargo build --release --bins --example floor"
        (cd "$REPO" && timeout 3600 cargo build --release --locked --bins --example floor) >&2
    fi
    TAPROOT_BIN="${BENCH_TAPROOT_BIN:-$REPO/target/release/taproot}"
    FLOOR_BIN="$REPO/target/release/examples/floor"
    [ -x "$TAPROOT_BIN" ] || die "$TAPROOT_BIN missing"
    [ -x "$FLOOR_BIN" ] || die "$FLOOR_BIN missing"
}

# ---------------------------------------------------------------------------
# The fake tree

# Name sets, all A records in bench.lab.: h0.. (HOT, cache hits), c0..
# (COLD per round, cold misses), m0.. (MEM, memory). TTL 86400 so nothing
# expires, nor reaches the prefetch window, during the run.
write_tree() {
    mkdir -p "$WORK/zones"
    cat >"$WORK/zones/root.zone" <<EOF
\$TTL 86400
.                IN SOA a.root-servers. hostmaster.root-servers. 1 1800 900 604800 86400
.                IN NS  a.root-servers.
a.root-servers.  IN A   $NET.1
lab.      172800 IN NS  ns1.nic.lab.
ns1.nic.lab. 172800 IN A $NET.2
EOF
    cat >"$WORK/zones/lab.zone" <<EOF
\$ORIGIN lab.
\$TTL 86400
@         IN SOA ns1.nic hostmaster.nic 1 1800 900 604800 600
@         IN NS  ns1.nic
ns1.nic   IN A   $NET.2
bench     IN NS  ns.bench
ns.bench  IN A   $NET.3
rrl       IN NS  ns.rrl
ns.rrl    IN A   $NET.4
EOF
    # The lossy phase's zone: one wildcard, so every name is one RRL bucket.
    cat >"$WORK/zones/rrl.zone" <<EOF
\$ORIGIN rrl.lab.
\$TTL 86400
@         IN SOA ns hostmaster 1 1800 900 604800 600
@         IN NS  ns
ns        IN A   $NET.4
*         IN A   198.18.255.1
EOF
    {
        cat <<EOF
\$ORIGIN bench.lab.
\$TTL 86400
@         IN SOA ns hostmaster 1 1800 900 604800 600
@         IN NS  ns
ns        IN A   $NET.3
; the memory phase's wildcard: names m0.w.. answered from it, asked
; without and with DO (signed, each answer carries the wildcard's proof)
*.w       IN A   198.18.254.1
EOF
        # Addresses from 198.18.0.0/15 (RFC 2544, benchmarking); never contacted.
        awk -v hot="$HOT" -v cold=$((ROUNDS * COLD)) -v mem="$MEM" 'BEGIN {
            for (i = 0; i < hot; i++)  printf "h%d IN A 198.18.%d.%d\n", i, int(i / 256) % 256, i % 256
            for (i = 0; i < cold; i++) printf "c%d IN A 198.19.%d.%d\n", i, int(i / 256) % 256, i % 256
            for (i = 0; i < mem; i++)  printf "m%d IN A 198.18.%d.%d\n", i, int(i / 256) % 256, i % 256
        }'
    } >"$WORK/zones/bench.zone"

    # Root hints in named.root format, used by both resolvers.
    cat >"$WORK/root.hints" <<EOF
; the fake root on loopback ($NET.1, port 53)
.                 3600000  NS  a.root-servers.
a.root-servers.   3600000  A   $NET.1
EOF

    # Query files.
    awk -v n="$HOT" 'BEGIN { for (i = 0; i < n; i++) printf "h%d.bench.lab. A\n", i }' >"$WORK/hot.txt"
    local r
    for ((r = 0; r < ROUNDS; r++)); do
        awk -v a=$((r * COLD)) -v n="$COLD" 'BEGIN { for (i = a; i < a + n; i++) printf "c%d.bench.lab. A\n", i }' >"$WORK/cold-$r.txt"
    done
    awk -v n="$MEM" 'BEGIN { for (i = 0; i < n; i++) printf "m%d.bench.lab. A\n", i }' >"$WORK/mem.txt"
    awk -v n="$WILD" 'BEGIN { for (i = 0; i < n; i++) printf "m%d.w.bench.lab. A\n", i }' >"$WORK/wmem.txt"
    if [ "$RPZ" -gt 0 ]; then
        bash "$HERE/rpz.sh" generate "$RPZ" "$WORK/block.rpz"
        log "RPZ of $RPZ names written for both resolvers"
    fi
    # Lossy names, fresh for each resolver and round.
    local s
    for ((r = 0; r < ROUNDS; r++)); do
        for s in taproot unbound; do
            awk -v p="$s$r" -v n="$LOSSY" 'BEGIN { for (i = 0; i < n; i++) printf "%sx%d.rrl.lab. A\n", p, i }' >"$WORK/lossy-$s-$r.txt"
        done
    done
}

# sign_zone ORIGIN ZONEFILE [DS-FILE-OF-CHILD]: appends the child's DS line,
# signs the zone in place with a fresh KSK and ZSK, and leaves the KSK's DS
# line in $WORK/keys/ORIGIN.ds for the parent.
sign_zone() {
    local origin=$1 zonefile="$WORK/zones/$2" child_ds=${3:-} ksk zsk
    mkdir -p "$WORK/keys"
    [ -n "$child_ds" ] && cat "$child_ds" >>"$zonefile"
    ksk=$(cd "$WORK/keys" && ldns-keygen -a ECDSAP256SHA256 -k -r /dev/urandom "$origin")
    zsk=$(cd "$WORK/keys" && ldns-keygen -a ECDSAP256SHA256 -r /dev/urandom "$origin")
    (cd "$WORK/keys" && ldns-signzone -o "$origin" -f "$zonefile.signed" "$zonefile" "$ksk" "$zsk")
    mv "$zonefile.signed" "$zonefile"
    cp "$WORK/keys/$ksk.ds" "$WORK/keys/$origin.ds"
}

# VALIDATE=1: bench.lab., lab. and the root signed bottom up; the root's DS
# is both resolvers' trust anchor.
sign_tree() {
    [ "$VALIDATE" = 1 ] || return 0
    sign_zone bench.lab. bench.zone
    sign_zone lab. lab.zone "$WORK/keys/bench.lab..ds"
    sign_zone . root.zone "$WORK/keys/lab..ds"
    cp "$WORK/keys/..ds" "$WORK/anchor.ds"
    log "signed the tree; trust anchor: $(cut -f1,4- "$WORK/anchor.ds" | tr '\t' ' ')"
}

# start_nsd IP ORIGIN ZONEFILE: one NSD per address (each knows only its own
# zone, so a referral really leads elsewhere), foreground (-d), with a
# control socket (a unix socket needs no TLS keys) to read its query counter.
start_nsd() {
    local ip=$1 origin=$2 zonefile=$3 extra=${4:-} dir="$WORK/nsd-$1"
    mkdir -p "$dir"
    cp "$WORK/zones/$zonefile" "$dir/"
    cat >"$dir/nsd.conf" <<EOF
server:
  ip-address: $ip
  port: 53
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$dir"
  zonelistfile: "$dir/zone.list"
  xfrdfile: "$dir/xfrd.state"
  xfrdir: "$dir"
  pidfile: "$dir/nsd.pid"
  server-count: 1
  verbosity: 1
  hide-version: yes
  refuse-any: yes
$extra
remote-control:
  control-enable: yes
  control-interface: "$dir/nsd.ctl"
zone:
  name: "$origin"
  zonefile: "$zonefile"
EOF
    spawn "nsd-$ip" "$dir/nsd.log" nsd -d -c "$dir/nsd.conf"
}

nsd_authoritative() { dig +norec +time=1 +tries=1 -p 53 "@$1" "$2" SOA | grep -q 'flags: qr aa'; }

start_tree() {
    start_nsd "$NET.1" . root.zone
    start_nsd "$NET.2" lab. lab.zone
    start_nsd "$NET.3" bench.lab. bench.zone
    start_nsd "$NET.4" rrl.lab. rrl.zone "$(printf '  rrl-ratelimit: %s\n  rrl-slip: 2' "$RRL_RATE")"
    local ip origin
    for pair in "$NET.1 ." "$NET.2 lab." "$NET.3 bench.lab." "$NET.4 rrl.lab."; do
        read -r ip origin <<<"$pair"
        # A 1M-name zone takes NSD a few seconds to load.
        wait_for 120 "NSD $ip" nsd_authoritative "$ip" "$origin" ||
            die "NSD on $ip did not serve $origin; its log: $(cat "$WORK/nsd-$ip/nsd.log")"
    done
    log "NSD serves . lab. bench.lab. rrl.lab. (RRL $RRL_RATE/s) on $NET.1-4:53 ($((HOT + ROUNDS * COLD + MEM)) names in bench.lab.)"
}

# Queries all three NSDs received so far (TCP and UDP): the upstream traffic
# of whichever resolver is busy, counted the same way for both.
nsd_queries() {
    local total=0 ip n
    for ip in "$NET.1" "$NET.2" "$NET.3"; do
        n=$(nsd-control -c "$WORK/nsd-$ip/nsd.conf" stats_noreset | sed -n 's/^num\.queries=//p')
        total=$((total + n))
    done
    echo "$total"
}

# ---------------------------------------------------------------------------
# The servers

# The shipped config/taproot.toml with only what the lab needs changed.
write_shipped_config() {
    local out=$1
    sed -e "s|^listen = \\[\"127.0.0.1:53\", \"\\[::1\\]:53\"\\]|listen = [\"127.0.0.1:$TAPROOT_PORT\"]|" \
        -e "s|^threads = 0|threads = $WORKERS|" \
        -e "s|^root_hints_file = \"\"|root_hints_file = \"$WORK/root.hints\"|" \
        -e 's|^allow_loopback_upstreams = false|allow_loopback_upstreams = true|' \
        -e "s|^listen = \"127.0.0.1:9153\"|listen = \"127.0.0.1:$METRICS_PORT\"|" \
        -e "s|^trust_anchor_file = \"\"|trust_anchor_file = \"$WORK/anchor.ds\"|" \
        "$REPO/config/taproot.toml" >"$out"
    local want
    for want in "127.0.0.1:$TAPROOT_PORT" "threads = $WORKERS" "$WORK/root.hints" "allow_loopback_upstreams = true" \
        "127.0.0.1:$METRICS_PORT" "$WORK/anchor.ds"; do
        grep -qF "$want" "$out" || die "config/taproot.toml changed shape: could not set $want"
    done
}

# The [[rpz]] table for RPZ>0 (last in the file: TOML tables come after keys).
taproot_rpz() {
    [ "$RPZ" -gt 0 ] || return 0
    printf '\n[[rpz]]\nzone = "block.rpz"\nfile = "%s"\n' "$WORK/block.rpz"
}

start_taproot() {
    local dir="$WORK/taproot"
    mkdir -p "$dir"
    if [ "$SHIPPED" = 1 ]; then
        write_shipped_config "$dir/taproot.toml"
        taproot_rpz >>"$dir/taproot.toml"
        "$TAPROOT_BIN" check-config --config "$dir/taproot.toml" >"$dir/check-config.out" 2>&1 ||
            die "taproot check-config failed: $(cat "$dir/check-config.out")"
        spawn taproot "$dir/taproot.log" taskset -c "$SERVER_CPU" "$TAPROOT_BIN" --config "$dir/taproot.toml"
        return
    fi
    # Defaults except: loopback listener, one UDP thread + one runtime
    # worker, the fake tree, no rate limit (one client sends everything), a
    # cache big enough that the memory phase evicts nothing.
    cat >"$dir/taproot.toml" <<EOF
[server]
listen = ["127.0.0.1:$TAPROOT_PORT"]
threads = $WORKERS
$TAPROOT_SERVER_EXTRA

[resolver]
root_hints_file = "$WORK/root.hints"
upstream_port = 53
allow_loopback_upstreams = true
qname_minimisation = true

$(if [ "$VALIDATE" = 1 ]; then
        printf '[dnssec]\nvalidation = true\ntrust_anchor_file = "%s"\n' "$WORK/anchor.ds"
    else
        printf '[dnssec]\nvalidation = false\n'
    fi)

[cache]
size_mb = $CACHE_MB

[[acl]]
prefix = "127.0.0.0/8"
action = "allow"

[ratelimit]
qps = 0

[metrics]
listen = "127.0.0.1:$METRICS_PORT"

$(if [ -n "$TRACE_KEEP" ]; then printf '[trace]\nkeep_failures = %s\n' "$TRACE_KEEP"; fi)

[log]
level = "info"
EOF
    taproot_rpz >>"$dir/taproot.toml"
    "$TAPROOT_BIN" check-config --config "$dir/taproot.toml" >"$dir/check-config.out" 2>&1 ||
        die "taproot check-config failed: $(cat "$dir/check-config.out")"
    spawn taproot "$dir/taproot.log" taskset -c "$SERVER_CPU" "$TAPROOT_BIN" --config "$dir/taproot.toml"
}

start_unbound() {
    local dir="$WORK/unbound"
    mkdir -p "$dir"
    # Mirrors taproot's settings: one thread, the same hints, qname
    # minimisation on, prefetch and serve-expired on (taproot's defaults),
    # validating as taproot does (VALIDATE=1) or iterator only, generous
    # caches, hardening at Unbound's defaults, no remote control.
    local modules='module-config: "iterator"'
    if [ "$VALIDATE" = 1 ]; then
        modules=$(printf 'module-config: "validator iterator"\n  trust-anchor-file: "%s"' "$WORK/anchor.ds")
    fi
    local rpz=""
    if [ "$RPZ" -gt 0 ]; then
        modules=${modules/module-config: \"/module-config: \"respip }
        rpz=$(printf 'rpz:\n  name: "block.rpz."\n  zonefile: "%s"' "$WORK/block.rpz")
    fi
    cat >"$dir/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$UNBOUND_PORT
  num-threads: $WORKERS
  so-reuseport: yes
  do-ip4: yes
  do-ip6: no
  do-not-query-localhost: no
  root-hints: "$WORK/root.hints"
  access-control: 127.0.0.0/8 allow
  chroot: ""
  username: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  logfile: "$dir/unbound.log"
  verbosity: 1
  $modules
  qname-minimisation: yes
  prefetch: yes
  serve-expired: yes
  msg-cache-size: 2048m
  rrset-cache-size: 2048m
  ratelimit: 0
  ip-ratelimit: 0
  # taproot's UDP sockets ask for 4 MiB buffers (server::udp::bind): the
  # same here and in the floor, so that under a burst all three queue
  # queries rather than one queueing (and answering late: p99) where the
  # others drop (and leave the late ones out of the percentiles).
  so-rcvbuf: 4m
  so-sndbuf: 4m
$rpz
$UNBOUND_EXTRA
remote-control:
  control-enable: no
EOF
    unbound-checkconf "$dir/unbound.conf" >"$dir/checkconf.out" 2>&1 ||
        die "unbound-checkconf failed: $(cat "$dir/checkconf.out")"
    spawn unbound "$dir/stdout.log" taskset -c "$SERVER_CPU" unbound -d -c "$dir/unbound.conf"
}

start_floor() {
    # Lives long enough for any run of this script; killed on exit anyway.
    spawn floor "$WORK/floor.log" taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" 7200 "$WORKERS"
}

# Any reply at all (dig exits 0) means the server is up.
answers() { dig +time=1 +tries=1 -p "$1" @127.0.0.1 version.bind CH TXT; }

start_servers() {
    start_taproot
    start_unbound
    start_floor
    local s comm
    for s in "${SERVERS[@]}"; do
        # A big RPZ takes Unbound several seconds to load.
        wait_for $((RPZ > 0 ? 180 : 30)) "$s" answers "${PORT[$s]}" || die "$s did not answer on port ${PORT[$s]}"
        comm=$(cat "/proc/${PID[$s]}/comm")
        case "$s:$comm" in
        taproot:taproot | unbound:unbound | floor:floor) ;;
        *) die "pid ${PID[$s]} is '$comm', not $s: cannot measure its CPU" ;;
        esac
    done
    log "taproot pid ${PID[taproot]}, unbound pid ${PID[unbound]}, floor pid ${PID[floor]}, all on core $SERVER_CPU"
}

# ---------------------------------------------------------------------------
# Measurement helpers

# utime + stime of the whole process (all threads), in clock ticks:
# /proc/PID/stat fields 14 and 15, counted after the ")" ending the name.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# taproot_metric NAME sums every series of NAME; taproot_metric 'NAME{kind="answer"}' one series.
taproot_metric() {
    curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
        awk -v m="$1" '$1 == m || (index(m, "{") == 0 && index($1, m "{") == 1) { s += $2 } END { printf "%.0f\n", s }'
}

# Drops counted on the server's own UDP socket(s) on 127.0.0.1:PORT (the last
# column of /proc/net/udp): replies lost because the server fell behind.
sock_drops() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    awk -v a="$hex" '$2 == a { s += $NF } END { print s + 0 }' /proc/net/udp
}

# Contention checks, since a build or test running beside the benchmark
# skews every figure:
# - run_delay_ns PID: time the server's threads were runnable but waiting
#   for a core (/proc/PID/task/*/schedstat field 2). The server is alone on
#   its core, so this stays near zero unless something else runs there.
# - cpu_stall_us: PSI "some" CPU stall time, whole machine
#   (/proc/pressure/cpu). Not zero even when idle: dnsperf's sender and
#   receiver threads share the load core (about 12% here). "0" without PSI.
run_delay_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f\n", s }'; }
cpu_stall_us() { sed -n 's/^some .*total=//p' /proc/pressure/cpu 2>/dev/null || echo 0; }
now_us() { echo $(($(date +%s%N) / 1000)); }

RESULTS=""
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# run_dnsperf OUT SECS_LIMIT ARGS...: dnsperf on the load core, bounded.
# -b 4096: a 4 MiB socket buffer for dnsperf. With its small default, bursts
# of replies overflow dnsperf's own receive buffer (UDP RcvbufErrors) and
# every server, the floor too, "loses" ~0.5% at 50k q/s.
run_dnsperf() {
    local out=$1 limit=$2
    shift 2
    timeout $((limit + 30)) taskset -c "$LOAD_CPU" dnsperf -b 4096 "$@" >"$out" 2>&1 ||
        die "dnsperf $* failed: $(grep -v '^>' "$out" | tail -20)"
}

# Parsed fields of one dnsperf output (see compare_helper.py dnsperf).
parse() { python3 "$HELPER" dnsperf "$1"; }

ensure_running() {
    local s
    for s in "${SERVERS[@]}"; do
        kill -0 "${PID[$s]}" 2>/dev/null || die "$s (pid ${PID[$s]}) died; logs in $WORK"
    done
}

# ---------------------------------------------------------------------------
# Phases

warm() {
    local s out
    for s in taproot unbound; do
        out="$WORK/warm-$s.out"
        run_dnsperf "$out" 120 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/hot.txt" -n 1 -q 100 -t 5 -l 120
        read -r _ completed _ _ _ _ _ _ noerror _ < <(parse "$out")
        [ "$noerror" = "$HOT" ] || die "warm-up of $s: $noerror of $HOT names answered NOERROR ($completed completed); see $out"
        log "warm: $s cached $HOT names"
        if [ "$VALIDATE" = 1 ]; then
            dig +dnssec +time=2 +tries=1 -p "${PORT[$s]}" @127.0.0.1 h0.bench.lab. A | grep -q 'flags: qr rd ra ad' ||
                die "$s does not validate: h0.bench.lab. came back without AD"
        fi
    done
}

# One cache-hit run against server $1 in round $2.
hit_run() {
    local s=$1 r=$2 out="$WORK/hit-$1-$2.out" t0 t1 m0=0 m1=0 d0 d1 p0 p1 w0 w1 q0 q1
    local sent completed lost qps avg max p50 p99 noerror runtime
    local answer_misses='taproot_cache_misses_total{kind="answer"}'
    [ "$s" = taproot ] && m0=$(taproot_metric "$answer_misses")
    d0=$(sock_drops "${PORT[$s]}")
    p0=$(cpu_stall_us)
    q0=$(run_delay_ns "${PID[$s]}")
    w0=$(now_us)
    t0=$(cpu_ticks "${PID[$s]}")
    # -q 1000: enough slots that a slow server shows as latency or loss, not
    # as dnsperf quietly sending less. -t 2: a reply later than 2 s is lost.
    # WORKERS > 1: as many dnsperf threads, each with 4 client sockets, so
    # the kernel's SO_REUSEPORT hash of the source ports spreads the
    # queries over every worker of the server.
    local perf_pid="" clients=()
    [ "$WORKERS" -gt 1 ] && clients=(-T "$WORKERS" -c $((4 * WORKERS)))
    if [ "$s" = taproot ] && [ "$PERF" = 1 ]; then
        # Software clock events (this VM has no PMU): where the worker's time goes.
        perf record -q -e cpu-clock -g -F 4999 -p "${PID[$s]}" -o "$WORK/perf-hit-$r.data" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    run_dnsperf "$out" "$SECS" -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/hot.txt" \
        -Q "$RATE" -l "$SECS" -q 1000 -t 2 -v ${clients[@]+"${clients[@]}"}
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        log "perf profile of taproot's hit run: $WORK/perf-hit-$r.data (its CPU figure includes perf's cost)"
    fi
    t1=$(cpu_ticks "${PID[$s]}")
    w1=$(now_us)
    q1=$(run_delay_ns "${PID[$s]}")
    p1=$(cpu_stall_us)
    d1=$(sock_drops "${PORT[$s]}")
    # Checks the run really was all cache hits (taproot counts them; Unbound's
    # counters need remote control, which stays off).
    [ "$s" = taproot ] && m1=$(taproot_metric "$answer_misses") && record hit_misses "$s" "$r" $((m1 - m0))
    read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
    [ "$completed" -gt 0 ] || die "$s answered nothing; see $out"
    record hit_cpu_us "$s" "$r" "$(calc "($t1 - $t0) * 1000000 / $HZ / $completed")"
    record hit_qps "$s" "$r" "$qps"
    record hit_lost "$s" "$r" "$lost"
    record hit_lost_pct "$s" "$r" "$(calc "100 * $lost / $sent")"
    record hit_sock_drops "$s" "$r" $((d1 - d0))
    # Anything else running (a build, a test) skews the figures; the table shows it.
    record hit_stall_pct "$s" "$r" "$(calc "100 * ($p1 - $p0) / ($w1 - $w0)")"
    record hit_wait_pct "$s" "$r" "$(calc "100 * ($q1 - $q0) / 1000 / ($w1 - $w0)")"
    record hit_avg_us "$s" "$r" "$avg"
    record hit_p50_us "$s" "$r" "$p50"
    record hit_p99_us "$s" "$r" "$p99"
    record hit_max_us "$s" "$r" "$max"
    log "hit  r$r $s: $completed answered, $lost lost ($((d1 - d0)) at the server socket), $qps q/s," \
        "cpu $(calc "($t1 - $t0) * 1000000 / $HZ / $completed") µs/q, p99 ${p99} µs," \
        "server run-queue wait $(calc "100 * ($q1 - $q0) / 1000 / ($w1 - $w0)")%, machine CPU stall $(calc "100 * ($p1 - $p0) / ($w1 - $w0)")%"
    # The per-query lines are big (RATE x SECS); keep only the summary.
    grep -v '^>' "$out" >"$out.summary" || true
    rm -f "$out"
}

# One cold run against resolver $1 in round $2: names cN never asked before.
cold_run() {
    local s=$1 r=$2 out="$WORK/cold-$1-$2.out" q0 q1 t0 t1 u0=0 u1=0
    local sent completed lost qps avg max p50 p99 noerror runtime
    # Scrapes come before t0 and after t1: taproot's /metrics runs cache
    # maintenance, which is not the cost of these names.
    [ "$s" = taproot ] && u0=$(taproot_metric taproot_upstream_queries_total)
    q0=$(nsd_queries)
    local perf_pid=""
    if [ "$s" = taproot ] && [ "$PERF" = 1 ]; then
        perf record -q -g -F 2000 -p "${PID[$s]}" -o "$WORK/perf-cold-$r.data" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    t0=$(cpu_ticks "${PID[$s]}")
    run_dnsperf "$out" 120 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/cold-$r.txt" -n 1 -q "$COLD_Q" -t 5 -l 120
    t1=$(cpu_ticks "${PID[$s]}")
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        log "perf profile of taproot's cold run: $WORK/perf-cold-$r.data"
    fi
    q1=$(nsd_queries)
    [ "$s" = taproot ] && u1=$(taproot_metric taproot_upstream_queries_total)
    read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
    record cold_wall_s "$s" "$r" "$runtime"
    record cold_names_s "$s" "$r" "$(calc "$completed / $runtime")"
    record cold_upstream "$s" "$r" "$(calc "($q1 - $q0) / $COLD")"
    [ "$s" = taproot ] && record cold_upstream_self "$s" "$r" "$(calc "($u1 - $u0) / $COLD")"
    record cold_cpu_us "$s" "$r" "$(calc "($t1 - $t0) * 1000000 / $HZ / $COLD")"
    record cold_fail "$s" "$r" $((COLD - noerror))
    log "cold r$r $s: $noerror/$COLD NOERROR in ${runtime}s, $((q1 - q0)) upstream queries (NSD)"
}

# The kernel's count of UDP datagrams dropped for a full receive buffer,
# machine-wide: a resolver that reads its upstream sockets too slowly loses
# answers there, not at the rate limiter.
udp_rcvbuf_errors() {
    nstat -az UdpRcvbufErrors 2>/dev/null | awk '$1 == "UdpRcvbufErrors" { n = $2 } END { print n + 0 }'
}

# One lossy run against resolver $1 in round $2: cold names behind the
# rate-limiting NSD.
lossy_run() {
    local s=$1 r=$2 out="$WORK/lossy-$1-$2.out" e0 e1
    local sent completed lost qps avg max p50 p99 noerror runtime
    # Let the previous run's RRL bucket drain (NSD counts per second).
    sleep 2
    e0=$(udp_rcvbuf_errors)
    run_dnsperf "$out" 120 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/lossy-$s-$r.txt" -n 1 -q "$LOSSY_Q" -t 12 -l 120
    e1=$(udp_rcvbuf_errors)
    read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
    record lossy_names_s "$s" "$r" "$(calc "$noerror / $runtime")"
    record lossy_fail_pct "$s" "$r" "$(calc "100 * ($LOSSY - $noerror) / $LOSSY")"
    record lossy_avg_ms "$s" "$r" "$(calc "$avg / 1000")"
    record lossy_rcvbuf_errors "$s" "$r" $((e1 - e0))
    log "lossy r$r $s: $noerror/$LOSSY NOERROR in ${runtime}s, UdpRcvbufErrors +$((e1 - e0))"
}

rounds() {
    local r i s order
    for ((r = 0; r < ROUNDS; r++)); do
        # Rotate who goes first, so no server always runs right after another.
        order=()
        for ((i = 0; i < 3; i++)); do order+=("${SERVERS[$(((r + i) % 3))]}"); done
        for s in "${order[@]}"; do
            ensure_running
            hit_run "$s" "$r"
        done
        for s in "${order[@]}"; do
            [ "$s" = floor ] || cold_run "$s" "$r"
        done
        for s in "${order[@]}"; do
            [ "$s" = floor ] || lossy_run "$s" "$r"
        done
    done
}

memory() {
    local s out rss0 rss1 rss2 names wnames wdo
    local sent completed lost qps avg max p50 p99 noerror runtime
    for s in taproot unbound; do
        # Plain names: m0.. A, asked once without DO.
        out="$WORK/mem-$s.out"
        rss0=$(rss_kib "${PID[$s]}")
        run_dnsperf "$out" 1800 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/mem.txt" -n 1 -q "$MEM_Q" -t 5 -l 1800
        # Let background work (cache housekeeping) settle before reading RSS;
        # a taproot scrape also runs its caches' pending maintenance.
        [ "$s" = taproot ] && log "after the fill: taproot_cache_entries $(taproot_metric taproot_cache_entries)," \
            "taproot_cache_bytes $(taproot_metric taproot_cache_bytes)"
        sleep 3
        rss1=$(rss_kib "${PID[$s]}")
        read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
        names=$noerror
        record mem_names "$s" 0 "$names"
        record mem_fill_names_s "$s" 0 "$qps"
        record mem_rss0_mib "$s" 0 "$(calc "$rss0 / 1024")"
        record mem_rss1_mib "$s" 0 "$(calc "$rss1 / 1024")"
        record mem_bytes_per_name "$s" 0 "$(calc "($rss1 - $rss0) * 1024 / ($names > 0 ? $names : 1)")"
        log "mem  $s: $names names, RSS ${rss0} -> ${rss1} KiB"
        # Names under the wildcard *.w.bench.lab.: each asked once without DO
        # and once with DO (-D), as a stub and a validating client would.
        # Signed (VALIDATE=1), both answers carry the wildcard's NSEC proof
        # (RFC 4035 §5.3.4); the DO=0 one without the DNSSEC records.
        out="$WORK/wmem-$s.out"
        run_dnsperf "$out" 1800 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/wmem.txt" -n 1 -q "$MEM_Q" -t 5 -l 1800
        read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
        wnames=$noerror
        run_dnsperf "$out.do" 1800 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/wmem.txt" -n 1 -q "$MEM_Q" -t 5 -l 1800 -D
        read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out.do")
        wdo=$noerror
        if [ "$s" = taproot ]; then
            log "after the wildcard fill: taproot_cache_entries $(taproot_metric taproot_cache_entries)"
            # Every counter (each cache's size by kind, upstream queries and
            # their outcomes), to tell where the bytes and the time went.
            curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
                grep -v '^#' >"$WORK/metrics-wild.txt" || true
        fi
        sleep 3
        rss2=$(rss_kib "${PID[$s]}")
        [ "$wdo" -lt "$wnames" ] && wnames=$wdo
        record mem_wild_names "$s" 0 "$wnames"
        record mem_rss2_mib "$s" 0 "$(calc "$rss2 / 1024")"
        record mem_wild_bytes_per_name "$s" 0 "$(calc "($rss2 - $rss1) * 1024 / ($wnames > 0 ? $wnames : 1)")"
        log "mem  $s: $wnames wildcard names asked without and with DO, RSS ${rss1} -> ${rss2} KiB"
    done
}

# taproot's own view at the end, for the record: drops, SERVFAILs, evictions
# (the memory phase assumes none).
taproot_notes() {
    local m line="taproot counters at the end:"
    for m in taproot_dropped_total taproot_servfail_total taproot_cache_evictions_total \
        taproot_cache_prefetches_total taproot_upstream_queries_total; do
        line+=" $m=$(taproot_metric "$m")"
    done
    echo "$line"
}

report() {
    echo
    echo "taproot vs Unbound: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))"
    echo "taproot $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(unbound -V | head -1), $(nsd -v 2>&1 | head -1), dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
    echo "VALIDATE=$VALIDATE SHIPPED=$SHIPPED ROUNDS=$ROUNDS WORKERS=$WORKERS RATE=$RATE q/s SECS=$SECS HOT=$HOT COLD=$COLD COLD_Q=$COLD_Q MEM=$MEM WILD=$WILD MEM_Q=$MEM_Q CACHE_MB=$CACHE_MB; dnsperf on core $LOAD_CPU, servers on core $SERVER_CPU; load average at start: $LOADAVG"
    echo
    python3 "$HELPER" table "$RESULTS"
    echo
    taproot_notes
    echo "CPU from /proc/PID/stat utime+stime (CLK_TCK=$HZ); p50/p99 from dnsperf -v per-query latencies; upstream queries counted by NSD (nsd-control stats_noreset num.queries, all 3 servers)."
}

main() {
    need_tools
    preflight
    LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
    build
    WORK=$(mktemp -d /tmp/taproot-bench.XXXXXX)
    RESULTS="$WORK/results.tsv"
    : >"$RESULTS"
    # Only the config this script writes may reach taproot.
    local v
    # (export -n, not unset: TAPROOT_PORT is also this script's own knob.)
    for v in $(compgen -e | grep '^TAPROOT_' || true); do export -n "$v"; done
    write_tree
    sign_tree
    start_tree
    start_servers
    warm
    rounds
    ensure_running
    memory
    ensure_running
    report | tee "$WORK/report.txt"
}

# bench/encrypted.sh sources this file for its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
