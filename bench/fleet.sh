#!/usr/bin/env bash
# bench/fleet.sh: a fleet of two taproot instances sharing a cache on Redis
# ([cache.shared], issue 27), against one taproot alone, in one run.
#
#   dnsperf (core 0) ──► fleet1 :5386 ─┐ walk ──► NSD tree (compare.sh's)
#                    ──► fleet2 :5388 ─┤
#                    ──► taproot :5391 ┘ (no shared cache)
#                         (core 1)   fleet1, fleet2 ──► redis-server 127.0.0.1:6390 (core 0)
#
# Phases, each round (fresh names every round):
#   1. cold walk: fleet1 resolves COLD never-seen names cN (their zone's
#      delegation cached), walking each and writing it to Redis: names/s;
#   2. fleet warm: once Redis holds them, fleet2 is asked the same names:
#      each is a first-tier miss answered from Redis, no walk: names/s and
#      upstream queries (NSD's count: must be 0), and the speed-up over 1
#      (the goal is at least 5x);
#   3. hit CPU: the HOT names, cached in both, at a fixed RATE against
#      taproot (no tier) and fleet1 (tier on): server CPU µs per answer,
#      which the tier must leave unchanged (within 3%): a hit never reads it.
#
# It reuses bench/compare.sh's tree, servers and measurement (sourced):
# the same NSD tree, dnsperf runs, /proc CPU accounting, root hints on
# loopback (never built-in hints). Redis runs with persistence off, in the
# work dir, killed on exit with the rest. Run as root, like compare.sh.
#
# UPSTREAM_DELAY_MS=20: bench.lab.'s server answers 20 ms late (a relay,
# bench/delay_relay.py on $NET.5, holds each query), as a zone's servers do
# from a resolver on the Internet, while Redis stays a loopback hop away.
# 0 (the default): the walk is one loopback query to NSD, as cheap as a
# walk can be, and the speed-up is bounded by the CPU a name costs.
#
# Knobs: ROUNDS (3) COLD (2000) COLD_Q (100) RATE (20000) SECS (10) HOT (5000)
# UPSTREAM_DELAY_MS (0) REDIS_PORT (6390) FLEET1_PORT (5386) FLEET2_PORT
# (5388) and compare.sh's others. All traffic stays on loopback.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-20000}
MEM=${MEM:-0}
REDIS_PORT=${REDIS_PORT:-6390}
FLEET1_PORT=${FLEET1_PORT:-5386}
FLEET2_PORT=${FLEET2_PORT:-5388}
UPSTREAM_DELAY_MS=${UPSTREAM_DELAY_MS:-0}
# shellcheck source=compare.sh
source "$HERE/compare.sh"
SERVERS=(taproot fleet1 fleet2)
PORT[fleet1]=$FLEET1_PORT
PORT[fleet2]=$FLEET2_PORT
declare -A METRICS=([taproot]=$METRICS_PORT [fleet1]=$((FLEET1_PORT + 1)) [fleet2]=$((FLEET2_PORT + 1)))

start_redis() {
    local dir="$WORK/redis"
    mkdir -p "$dir"
    # On the load generator's core: Redis stands for another machine, and
    # sharing core 1 with the resolver it serves would time out its reads.
    spawn redis "$dir/redis.log" taskset -c "$LOAD_CPU" redis-server \
        --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir"
    wait_for 10 redis redis-cli -p "$REDIS_PORT" PING || die "redis-server did not answer on $REDIS_PORT"
}

# start_fleet NAME PORT: a taproot with [cache.shared] on the bench's Redis,
# through compare.sh's start_taproot with its own port, metrics and dir.
start_fleet() {
    local name=$1 port=$2 main_work=$WORK
    WORK="$main_work/$name"
    mkdir -p "$WORK"
    cp "$main_work/root.hints" "$WORK/"
    local saved=("$TAPROOT_PORT" "$METRICS_PORT" "$TAPROOT_SERVER_EXTRA")
    TAPROOT_PORT=$port
    METRICS_PORT=${METRICS[$name]}
    # A table after [server]'s keys; [cache] may still follow it in TOML.
    TAPROOT_SERVER_EXTRA=$(printf '\n[cache.shared]\nurl = "redis://127.0.0.1:%s/0"\nkey_secret_file = "%s"\n' \
        "$REDIS_PORT" "$main_work/fleet.key")
    start_taproot
    TAPROOT_PORT=${saved[0]} METRICS_PORT=${saved[1]} TAPROOT_SERVER_EXTRA=${saved[2]}
    WORK=$main_work
    PID[$name]=${PID[taproot]}
}

metric_of() {
    local saved=$METRICS_PORT
    METRICS_PORT=${METRICS[$1]}
    taproot_metric "$2"
    METRICS_PORT=$saved
}

# UPSTREAM_DELAY_MS: bench.lab.'s servers are named at the relay's address
# (in the parent's glue and in the zone itself, so the child's own NS set
# does not lead the walk around it), and the relay passes on to NSD.
delay_bench_zone() {
    [ "$UPSTREAM_DELAY_MS" != 0 ] || return 0
    sed -i "s/^ns\.bench  IN A   $NET\.3\$/ns.bench  IN A   $NET.5/" "$WORK/zones/lab.zone"
    sed -i "s/^ns        IN A   $NET\.3\$/ns        IN A   $NET.5/" "$WORK/zones/bench.zone"
    grep -q "$NET.5" "$WORK/zones/lab.zone" || die "lab.zone: the bench.lab. glue was not moved to the relay"
}

start_relay() {
    [ "$UPSTREAM_DELAY_MS" != 0 ] || return 0
    spawn relay "$WORK/relay.log" taskset -c "$LOAD_CPU" \
        python3 "$HERE/delay_relay.py" "$NET.5" 53 "$NET.3" 53 "$UPSTREAM_DELAY_MS"
    wait_for 10 relay nsd_authoritative "$NET.5" bench.lab. || die "the delay relay on $NET.5 does not answer"
    log "bench.lab. answers through a relay on $NET.5 that holds each query ${UPSTREAM_DELAY_MS} ms"
}

redis_answers() { redis-cli -p "$REDIS_PORT" --scan --pattern 'taproot:v1:*' | wc -l; }
redis_has() { [ "$(redis_answers)" -ge "$1" ]; }

# cold_run METRIC SERVER PORT R: SERVER asked cold-$R once (-n 1): names/s,
# upstream queries (NSD's count) and server CPU a name, recorded as METRIC_*.
cold_run() {
    local metric=$1 s=$2 port=$3 r=$4 out="$WORK/$1-$4.out" q0 q1 t0 t1
    local sent completed lost qps avg max p50 p99 noerror runtime
    q0=$(nsd_queries)
    t0=$(cpu_ticks "${PID[$s]}")
    run_dnsperf "$out" 120 -s 127.0.0.1 -p "$port" -d "$WORK/cold-$r.txt" -n 1 -q "$COLD_Q" -t 5 -l 120
    t1=$(cpu_ticks "${PID[$s]}")
    q1=$(nsd_queries)
    read -r sent completed lost qps avg max p50 p99 noerror runtime < <(parse "$out")
    [ "$noerror" = "$COLD" ] || die "$metric r$r: $noerror of $COLD NOERROR; see $out"
    record "${metric}_names_s" "$s" "$r" "$(calc "$completed / $runtime")"
    record "${metric}_upstream" "$s" "$r" "$(calc "($q1 - $q0) / $COLD")"
    record "${metric}_cpu_us" "$s" "$r" "$(calc "($t1 - $t0) * 1000000 / $HZ / $COLD")"
    log "$metric r$r $s: $COLD names in ${runtime}s, $((q1 - q0)) upstream queries"
}

# One cold round: fleet1 walks cold-$r, then fleet2 answers it from Redis.
fleet_round() {
    local r=$1 before
    before=$(redis_answers)
    cold_run walk fleet1 "$FLEET1_PORT" "$r"
    wait_for 30 redis redis_has $((before + COLD)) ||
        die "Redis holds $(redis_answers) answers, expected $((before + COLD))"
    cold_run tier fleet2 "$FLEET2_PORT" "$r"
}

warm_hot() {
    local s out
    for s in taproot fleet1; do
        out="$WORK/hot-warm-$s.out"
        run_dnsperf "$out" 120 -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/hot.txt" -n 1 -q 100 -t 5 -l 120
        read -r _ completed _ _ _ _ _ _ noerror _ < <(parse "$out")
        [ "$noerror" = "$HOT" ] || die "warm-up of $s: $noerror of $HOT NOERROR; see $out"
    done
}

report_fleet() {
    python3 - "$RESULTS" <<'EOF'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if len(p) == 4:
        vals.setdefault((p[0], p[1]), []).append(float(p[3]))
def med(m, s):
    xs = vals.get((m, s))
    return statistics.median(xs) if xs else float("nan")
walk, tier = med("walk_names_s", "fleet1"), med("tier_names_s", "fleet2")
print(f"cold names/s, fleet1 walking            {walk:10.0f}  (upstream/name {med('walk_upstream', 'fleet1'):.2f}, cpu {med('walk_cpu_us', 'fleet1'):.1f} µs/name)")
print(f"cold names/s, fleet2 warming from Redis {tier:10.0f}  (upstream/name {med('tier_upstream', 'fleet2'):.2f}, cpu {med('tier_cpu_us', 'fleet2'):.1f} µs/name)")
print(f"speed-up from the shared cache          {tier / walk:10.1f}x  (goal >= 5x)")
off, on = med("hit_cpu_us", "taproot"), med("hit_cpu_us", "fleet1")
print(f"hit CPU µs/answer, tier off (taproot)   {off:10.3f}  p99 {med('hit_p99_us', 'taproot'):.0f} µs")
print(f"hit CPU µs/answer, tier on (fleet1)     {on:10.3f}  p99 {med('hit_p99_us', 'fleet1'):.0f} µs")
print(f"tier on / tier off                      {on / off:10.3f}  (goal within 3%)")
print(f"machine CPU stall during hit runs        {med('hit_stall_pct', 'taproot'):.1f}% / {med('hit_stall_pct', 'fleet1'):.1f}%")
EOF
}

fleet_main() {
    need_tools
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server redis-tools)"
    preflight
    local p
    for p in "$REDIS_PORT" "$FLEET1_PORT" "$FLEET2_PORT" "${METRICS[fleet1]}" "${METRICS[fleet2]}"; do
        if ss -Hltun "sport = :$p" 2>/dev/null | grep -q .; then die "port $p is in use on this machine"; fi
    done
    LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
    build
    WORK=$(mktemp -d /tmp/taproot-bench-fleet.XXXXXX)
    RESULTS="$WORK/results.tsv"
    : >"$RESULTS"
    local v
    # No TAPROOT_* variable may reach taproot (it reads them as config).
    for v in $(compgen -e | grep '^TAPROOT_' || true); do export -n "$v"; done
    write_tree
    delay_bench_zone
    start_tree
    start_relay
    start_redis
    # The fleet's shared secret ([cache.shared] key_secret_file).
    head -c 32 /dev/urandom | base64 >"$WORK/fleet.key"
    start_fleet fleet1 "$FLEET1_PORT"
    start_fleet fleet2 "$FLEET2_PORT"
    start_taproot
    local s comm
    for s in "${SERVERS[@]}"; do
        wait_for 30 "$s" answers "${PORT[$s]}" || die "$s did not answer on port ${PORT[$s]}"
        comm=$(cat "/proc/${PID[$s]}/comm")
        [ "$comm" = taproot ] || die "pid ${PID[$s]} is '$comm', not taproot: cannot measure its CPU"
    done
    # Both fleet members learn the zone cuts once, so a cold name costs one
    # upstream query when walked (as in compare.sh's cold phase).
    dig +time=2 +tries=1 -p "$FLEET1_PORT" @127.0.0.1 h0.bench.lab. A >/dev/null
    dig +time=2 +tries=1 -p "$FLEET2_PORT" @127.0.0.1 h1.bench.lab. A >/dev/null
    local r order
    for ((r = 0; r < ROUNDS; r++)); do
        ensure_running
        fleet_round "$r"
    done
    warm_hot
    for ((r = 0; r < ROUNDS; r++)); do
        order=(taproot fleet1)
        [ $((r % 2)) = 1 ] && order=(fleet1 taproot)
        for s in "${order[@]}"; do
            ensure_running
            hit_run "$s" "$r"
        done
    done
    {
        echo
        echo "taproot fleet on Redis: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
        echo "taproot $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(redis-server --version | cut -d' ' -f1-3), dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
        echo "ROUNDS=$ROUNDS COLD=$COLD COLD_Q=$COLD_Q RATE=$RATE q/s SECS=$SECS HOT=$HOT UPSTREAM_DELAY_MS=$UPSTREAM_DELAY_MS; load average at start: $LOADAVG"
        echo "fleet tier reads: $(metric_of fleet2 'taproot_shared_cache_reads_total{result="hit"}') hits, $(metric_of fleet2 'taproot_shared_cache_reads_total{result="timeout"}') timeouts; writes dropped: $(metric_of fleet1 'taproot_shared_cache_writes_total{result="dropped"}')"
        echo
        report_fleet
    } | tee "$WORK/report.txt"
}

fleet_main "$@"
