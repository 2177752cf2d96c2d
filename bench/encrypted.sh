#!/usr/bin/env bash
# bench/encrypted.sh: cache hits over UDP, TCP, DNS over TLS and DNS over
# HTTPS, taproot against Unbound in one run (issue 26).
#
#   dnsperf -m udp|tcp|dot|doh (core 0) ──► taproot :5391 udp/tcp, :5395 DoT, :5396 DoH ─┐ walk
#                                       ──► unbound :5392 udp/tcp, :5397 DoT, :5398 DoH ─┴─► NSD tree
#                                           (both on core 1, one thread each)
#
# It reuses bench/compare.sh's tree, servers and measurement (sourced), adds
# a throwaway CA and a leaf made with openssl, and gives both resolvers the
# same certificate: taproot [server] listen_tls/listen_https, Unbound
# tls-port/https-port (Debian's build has nghttp2). Both caches are warmed
# over UDP; then, each round, every transport runs against each server at
# the same offered rate over ENC_CLIENTS connections (dnsperf -c, default
# 1), and the server's
# CPU per answered query comes from /proc/PID/stat as in compare.sh.
#
# BENCH_TAPROOT_BEFORE=path: also run that (older) taproot build on
# 127.0.0.1:5399, plain UDP and TCP only, in the same rounds: the "before"
# column, for a before/after comparison of the plain hit path in one run.
#
# Knobs: ROUNDS (3) ENC_RATE (10000 q/s) SECS (10) ENC_Q (100 outstanding:
# Unbound's http-max-streams is 100) ENC_CLIENTS (1 connection) HOT (5000)
# and compare.sh's others.
#
# One connection at a modest rate is ping-pong: each answer wakes the
# client's sleeping receive thread, and on a VM whose idle CPUs halt that
# wake-up is an IPI the server's send pays for. ENC_CLIENTS=10 at
# ENC_RATE=20000 is the busy server, where wake-ups amortise.
# Run as root, like compare.sh. All traffic stays on loopback.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
MEM=${MEM:-0}
COLD=${COLD:-1}
ENC_RATE=${ENC_RATE:-10000}
ENC_Q=${ENC_Q:-100}
ENC_CLIENTS=${ENC_CLIENTS:-1}
TAPROOT_DOT_PORT=${TAPROOT_DOT_PORT:-5395}
TAPROOT_DOH_PORT=${TAPROOT_DOH_PORT:-5396}
UNBOUND_DOT_PORT=${UNBOUND_DOT_PORT:-5397}
UNBOUND_DOH_PORT=${UNBOUND_DOH_PORT:-5398}
TAPROOT_BEFORE_PORT=${TAPROOT_BEFORE_PORT:-5399}
BENCH_TAPROOT_BEFORE=${BENCH_TAPROOT_BEFORE:-}
# shellcheck source=compare.sh
source "$HERE/compare.sh"
SERVERS=(taproot unbound)

make_certificate() {
    local d="$WORK/pki"
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -subj "/CN=bench CA" -days 2 2>/dev/null
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out leaf.key
        openssl req -new -key leaf.key -out leaf.csr -subj "/CN=dns.bench"
        printf 'subjectAltName=DNS:dns.bench,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out leaf.pem -days 2 -extfile ext.cnf 2>/dev/null
        cat leaf.pem ca.pem >chain.pem
    )
    CHAIN="$d/chain.pem"
    KEY="$d/leaf.key"
}

# One cache-hit run over transport $3 against server $1 in round $2.
enc_run() {
    local s=$1 r=$2 mode=$3 port args out="$WORK/enc-$1-$3-$2.out" t0 t1 p0 p1 w0 w1
    local sent completed lost qps avg max p50 p99 noerror runtime
    case "$s:$mode" in
    taproot:dot) port=$TAPROOT_DOT_PORT ;;
    taproot:doh) port=$TAPROOT_DOH_PORT ;;
    unbound:dot) port=$UNBOUND_DOT_PORT ;;
    unbound:doh) port=$UNBOUND_DOH_PORT ;;
    before:*) port=$TAPROOT_BEFORE_PORT ;;
    *) port=${PORT[$s]} ;;
    esac
    args=(-m "$mode" -s 127.0.0.1 -p "$port")
    if [ "$mode" = doh ]; then
        args+=(-O "doh-uri=https://127.0.0.1:$port/dns-query" -O doh-method=POST)
    fi
    p0=$(cpu_stall_us)
    w0=$(now_us)
    t0=$(cpu_ticks "${PID[$s]}")
    run_dnsperf "$out" "$SECS" "${args[@]}" -d "$WORK/hot.txt" -Q "$ENC_RATE" -l "$SECS" -c "$ENC_CLIENTS" -q "$ENC_Q" -t 2
    t1=$(cpu_ticks "${PID[$s]}")
    w1=$(now_us)
    p1=$(cpu_stall_us)
    read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
    [ "$completed" -gt 0 ] || die "$s answered nothing over $mode; see $out"
    record "enc_${mode}_cpu_us" "$s" "$r" "$(calc "($t1 - $t0) * 1000000 / $HZ / $completed")"
    record "enc_${mode}_qps" "$s" "$r" "$qps"
    record "enc_${mode}_lost_pct" "$s" "$r" "$(calc "100 * $lost / ($sent > 0 ? $sent : 1)")"
    record "enc_${mode}_avg_us" "$s" "$r" "$avg"
    record enc_stall_pct "$s" "$r" "$(calc "100 * ($p1 - $p0) / ($w1 - $w0)")"
    log "$mode r$r $s: $completed answered ($noerror NOERROR), $lost lost, $qps q/s," \
        "cpu $(calc "($t1 - $t0) * 1000000 / $HZ / $completed") µs/q," \
        "machine CPU stall $(calc "100 * ($p1 - $p0) / ($w1 - $w0)")%"
}

encrypted_main() {
    need_tools
    command -v openssl >/dev/null || die "openssl not found"
    preflight
    local p
    for p in "$TAPROOT_DOT_PORT" "$TAPROOT_DOH_PORT" "$UNBOUND_DOT_PORT" "$UNBOUND_DOH_PORT"; do
        if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then die "port $p is in use on this machine"; fi
    done
    LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
    build
    WORK=$(mktemp -d /tmp/taproot-bench-enc.XXXXXX)
    RESULTS="$WORK/results.tsv"
    : >"$RESULTS"
    local v
    # No TAPROOT_* variable may reach taproot (it reads them as config);
    # this script's own knobs (TAPROOT_PORT, …) keep their values unexported.
    for v in $(compgen -e | grep '^TAPROOT_' || true); do export -n "$v"; done
    make_certificate
    TAPROOT_SERVER_EXTRA=$(printf 'listen_tls = ["127.0.0.1:%s"]\nlisten_https = ["127.0.0.1:%s"]\n[server.tls]\ncertificate_file = "%s"\nkey_file = "%s"\n' \
        "$TAPROOT_DOT_PORT" "$TAPROOT_DOH_PORT" "$CHAIN" "$KEY")
    UNBOUND_EXTRA=$(printf '  interface: 127.0.0.1@%s\n  interface: 127.0.0.1@%s\n  tls-port: %s\n  https-port: %s\n  tls-service-key: "%s"\n  tls-service-pem: "%s"\n  http-endpoint: "/dns-query"\n' \
        "$UNBOUND_DOT_PORT" "$UNBOUND_DOH_PORT" "$UNBOUND_DOT_PORT" "$UNBOUND_DOH_PORT" "$KEY" "$CHAIN")
    write_tree
    start_tree
    if [ -n "$BENCH_TAPROOT_BEFORE" ]; then
        # The older build, started through the same function with its own
        # binary, ports and work dir (the hints are copied beside it).
        local main_work=$WORK
        WORK="$main_work/before"
        mkdir -p "$WORK"
        cp "$main_work/root.hints" "$WORK/"
        # Plain assignments, saved and restored: a prefix assignment would
        # export them, and taproot reads TAPROOT_* variables as config.
        local saved=("$TAPROOT_BIN" "$TAPROOT_PORT" "$METRICS_PORT" "$TAPROOT_SERVER_EXTRA")
        TAPROOT_SERVER_EXTRA=""
        TAPROOT_BIN=$BENCH_TAPROOT_BEFORE
        TAPROOT_PORT=$TAPROOT_BEFORE_PORT
        METRICS_PORT=$((TAPROOT_BEFORE_PORT + 1))
        start_taproot
        TAPROOT_BIN=${saved[0]} TAPROOT_PORT=${saved[1]} METRICS_PORT=${saved[2]}
        TAPROOT_SERVER_EXTRA=${saved[3]}
        WORK=$main_work
        PID[before]=${PID[taproot]}
        PORT[before]=$TAPROOT_BEFORE_PORT
        SERVERS+=(before)
    fi
    start_taproot
    start_unbound
    local s comm
    for s in "${SERVERS[@]}"; do
        wait_for 30 "$s" answers "${PORT[$s]}" || die "$s did not answer on port ${PORT[$s]}"
        comm=$(cat "/proc/${PID[$s]}/comm")
        [ "$comm" = "$s" ] || [ "$s:$comm" = before:taproot ] ||
            die "pid ${PID[$s]} is '$comm', not $s: cannot measure its CPU"
    done
    warm
    if [ -n "$BENCH_TAPROOT_BEFORE" ]; then
        run_dnsperf "$WORK/warm-before.out" 120 -s 127.0.0.1 -p "$TAPROOT_BEFORE_PORT" -d "$WORK/hot.txt" -n 1 -q 100 -t 5 -l 120
    fi
    local r i mode order
    for ((r = 0; r < ROUNDS; r++)); do
        for mode in udp tcp dot doh; do
            order=(taproot unbound)
            [ $((r % 2)) = 1 ] && order=(unbound taproot)
            case "$mode" in udp | tcp) [ -n "$BENCH_TAPROOT_BEFORE" ] && order+=(before) ;; esac
            for s in "${order[@]}"; do
                ensure_running
                enc_run "$s" "$r" "$mode"
            done
        done
    done
    {
        echo
        echo "taproot vs Unbound, cache hits by transport: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
        echo "taproot $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(unbound -V | head -1), dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
        echo "ROUNDS=$ROUNDS ENC_RATE=$ENC_RATE q/s SECS=$SECS ENC_Q=$ENC_Q HOT=$HOT, $ENC_CLIENTS connection(s) per run (dnsperf -c), DoH by POST over HTTP/2; load average at start: $LOADAVG"
        echo
        python3 "$HELPER" table "$RESULTS"
    } | tee "$WORK/report.txt"
}

encrypted_main "$@"
