#!/usr/bin/env python3
"""Parsing and reporting for bench/compare.sh.

  compare_helper.py dnsperf FILE
      Reads one dnsperf output (with or without -v per-query lines) and prints
      one line: sent completed lost qps avg_us max_us p50_us p99_us noerror runtime_s
      (p50/p99 are "nan" when the run had no -v lines).

  compare_helper.py table RESULTS.tsv
      Reads the "metric<TAB>server<TAB>round<TAB>value" lines the script
      recorded and prints the comparison table: the median over rounds of
      each metric, per server, and the ratio taproot/unbound.
"""

import math
import re
import statistics
import sys


def parse_dnsperf(path):
    sent = completed = lost = noerror = 0
    qps = avg = mx = runtime = math.nan
    lat = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                # "> NOERROR h1.bench.lab. A 0.000064"; a timeout is "> T name type".
                parts = line.split()
                if len(parts) >= 3 and parts[1] != "T":
                    try:
                        lat.append(float(parts[-1]))
                    except ValueError:
                        pass
                continue
            m = re.match(r"\s*Queries sent:\s+(\d+)", line)
            if m:
                sent = int(m.group(1))
            m = re.match(r"\s*Queries completed:\s+(\d+)", line)
            if m:
                completed = int(m.group(1))
            m = re.match(r"\s*Queries lost:\s+(\d+)", line)
            if m:
                lost = int(m.group(1))
            m = re.match(r"\s*Response codes:\s+(.*)", line)
            if m:
                m2 = re.search(r"NOERROR (\d+)", m.group(1))
                noerror = int(m2.group(1)) if m2 else 0
            m = re.match(r"\s*Run time \(s\):\s+([\d.]+)", line)
            if m:
                runtime = float(m.group(1))
            m = re.match(r"\s*Queries per second:\s+([\d.]+)", line)
            if m:
                qps = float(m.group(1))
            m = re.match(r"\s*Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)", line)
            if m:
                avg, mx = float(m.group(1)) * 1e6, float(m.group(2)) * 1e6
    p50 = p99 = math.nan
    if lat:
        lat.sort()
        # Nearest-rank percentiles over the answered queries.
        p50 = lat[max(0, math.ceil(0.50 * len(lat)) - 1)] * 1e6
        p99 = lat[max(0, math.ceil(0.99 * len(lat)) - 1)] * 1e6
    fields = [sent, completed, lost, qps, avg, mx, p50, p99, noerror, runtime]
    print(" ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in fields))


# (metric key, label, decimals). Only the metrics recorded appear.
ROWS = [
    ("section", "Cache hits (median of rounds)", 0),
    ("hit_cpu_us", "server CPU µs per answered query", 2),
    ("hit_qps", "achieved q/s", 0),
    ("hit_lost", "queries lost per run", 0),
    ("hit_lost_pct", "queries lost %", 3),
    ("hit_sock_drops", "drops on the server's socket per run", 0),
    ("hit_avg_us", "average latency µs", 1),
    ("hit_p50_us", "p50 latency µs", 1),
    ("hit_p99_us", "p99 latency µs", 1),
    ("hit_max_us", "max latency µs", 0),
    ("hit_misses", "answer-cache misses per run (taproot metric)", 0),
    ("hit_wait_pct", "server waited for its core, % of run time", 2),
    ("hit_stall_pct", "machine CPU stall (PSI some), % of run time", 1),
    ("section", "Cold misses (median of rounds)", 0),
    ("cold_wall_s", "wall time s", 3),
    ("cold_names_s", "names/s", 0),
    ("cold_upstream", "upstream queries per name (NSD)", 3),
    ("cold_upstream_self", "upstream queries per name (own counter)", 3),
    ("cold_cpu_us", "server CPU µs per name", 1),
    ("cold_fail", "names not answered NOERROR", 0),
    ("section", "Lossy: cold names behind NSD with RRL on (median of rounds)", 0),
    ("lossy_names_s", "names/s answered NOERROR", 0),
    ("lossy_fail_pct", "names not answered NOERROR %", 2),
    ("lossy_avg_ms", "average latency ms", 1),
    ("lossy_rcvbuf_errors", "kernel UDP receive-buffer errors (nstat)", 0),
    ("section", "Cache hits by transport, bench/encrypted.sh (median of rounds)", 0),
    ("enc_udp_cpu_us", "UDP: server CPU µs per answered query", 2),
    ("enc_tcp_cpu_us", "TCP: server CPU µs per answered query", 2),
    ("enc_dot_cpu_us", "DoT: server CPU µs per answered query", 2),
    ("enc_doh_cpu_us", "DoH (HTTP/2): server CPU µs per answered query", 2),
    ("enc_udp_qps", "UDP: achieved q/s", 0),
    ("enc_tcp_qps", "TCP: achieved q/s", 0),
    ("enc_dot_qps", "DoT: achieved q/s", 0),
    ("enc_doh_qps", "DoH: achieved q/s", 0),
    ("enc_udp_lost_pct", "UDP: queries lost %", 3),
    ("enc_tcp_lost_pct", "TCP: queries lost %", 3),
    ("enc_dot_lost_pct", "DoT: queries lost %", 3),
    ("enc_doh_lost_pct", "DoH: queries lost %", 3),
    ("enc_dot_avg_us", "DoT: average latency µs", 0),
    ("enc_doh_avg_us", "DoH: average latency µs", 0),
    ("enc_stall_pct", "machine CPU stall (PSI some), % of run time", 1),
    ("section", "Memory (one fill)", 0),
    ("mem_names", "names cached", 0),
    ("mem_fill_names_s", "fill rate names/s", 0),
    ("mem_rss0_mib", "RSS before fill MiB", 1),
    ("mem_rss1_mib", "RSS after fill MiB", 1),
    ("mem_bytes_per_name", "RSS growth bytes per name (m*.bench.lab. A, no DO)", 0),
    ("mem_wild_names", "wildcard names cached (each asked without and with DO)", 0),
    ("mem_rss2_mib", "RSS after the wildcard fill MiB", 1),
    ("mem_wild_bytes_per_name", "RSS growth bytes per wildcard name (DO=0 + DO=1)", 0),
]


def fmt(v, dec):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return f"{v:,.{dec}f}"


def table(path):
    vals = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            metric, server, _round, value = parts
            try:
                v = float(value)
            except ValueError:
                v = math.nan
            vals.setdefault((metric, server), []).append(v)

    def med(metric, server):
        xs = vals.get((metric, server))
        if not xs:
            return None
        good = [x for x in xs if not math.isnan(x)]
        return statistics.median(good) if good else math.nan

    # bench/encrypted.sh with BENCH_TAPROOT_BEFORE: an older taproot build
    # takes the floor's column.
    third = "before" if any(srv == "before" for (_, srv) in vals) else "floor"
    head = ["metric", "taproot", "unbound", "taproot/unbound", third]
    rows = []
    for key, label, dec in ROWS:
        if key == "section":
            rows.append(None if not rows else "sep")
            rows.append(("## " + label, "", "", "", ""))
            continue
        t, u, fl = med(key, "taproot"), med(key, "unbound"), med(key, third)
        if t is None and u is None:
            continue
        ratio = "-"
        if t is not None and u is not None and not math.isnan(t) and not math.isnan(u):
            ratio = f"{t / u:.2f}" if u != 0 else ("1.00" if t == 0 else "inf")
        rows.append((label, fmt(t, dec), fmt(u, dec), ratio, fmt(fl, dec)))
    rows = [r for r in rows if r is not None]
    # A section with no rows (a phase the run skipped) is left out.
    kept = []
    for i, r in enumerate(rows):
        if r != "sep" and r[0].startswith("## "):
            nxt = rows[i + 1] if i + 1 < len(rows) else "sep"
            if nxt == "sep" or nxt[0].startswith("## "):
                if kept and kept[-1] == "sep":
                    kept.pop()
                continue
        kept.append(r)
    rows = [r for i, r in enumerate(kept) if not (r == "sep" and (i == 0 or i == len(kept) - 1))]
    widths = [len(h) for h in head]
    for r in rows:
        if r != "sep":
            widths = [max(w, len(c)) for w, c in zip(widths, r)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths)), line]
    for r in rows:
        if r == "sep":
            continue
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append(" | ".join(cells))
    print("\n".join(out))
    # Thresholds: an idle 2-core machine shows under 1% server wait and ~12-14% PSI
    # stall (dnsperf's two threads share one core).
    waits = [v for k, vs in vals.items() if k[0] == "hit_wait_pct" for v in vs if v > 2]
    stalls = [v for k, vs in vals.items() if k[0] in ("hit_stall_pct", "enc_stall_pct") for v in vs if v > 20]
    if waits or stalls:
        print(
            f"WARNING: contention in {max(len(waits), len(stalls))} cache-hit run(s) (server waited for "
            f"its core up to {max(waits, default=0):.1f}% of the time, machine CPU stall up to "
            f"{max(stalls, default=0):.0f}%): something else was running; those figures are skewed."
        )


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "dnsperf":
        parse_dnsperf(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
