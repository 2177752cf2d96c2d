//! The shipped monitoring files: `deploy/grafana/taproot.json` and
//! `deploy/prometheus/`. They must load, name only metrics taproot exports,
//! and hold valid PromQL (checked by `promtool`).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::e2e::{TempDir, tool};
use taproot::metrics::names;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn dashboard() -> Value {
    let path = deploy("grafana/taproot.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, including those nested in collapsed rows.
fn panels(dash: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("a panels array") {
        out.push(p.clone());
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["expr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Metric names a PromQL expression mentions (`taproot_…`, `process_…`, `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if word_start && (rest.starts_with("taproot_") || rest.starts_with("process_")) {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..len].to_string());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

/// Series names taproot's `/metrics` exposes, histogram suffixes included.
fn exported() -> BTreeSet<String> {
    let families = names::ALWAYS_EXPORTED.into_iter().chain([
        names::UPSTREAM_REJECTED,
        // Present once a policy decided a query / an RPZ is configured.
        names::POLICY_HITS,
        names::POLICY_RULES,
    ]);
    let mut out = BTreeSet::new();
    for f in families {
        out.insert(f.to_string());
        for suffix in ["_bucket", "_count", "_sum"] {
            out.insert(format!("{f}{suffix}"));
        }
    }
    out
}

#[test]
fn the_dashboard_is_valid_json_with_the_panels_operators_need() {
    let dash = dashboard();
    assert_eq!(dash["title"], "taproot");
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let panels = panels(&dash);
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Queries per second by rcode",
        "Cache hit ratio",
        "Latency p50/p99 (cache hits and misses)",
        "Upstream RTT",
        "SERVFAIL rate",
        "Cache size",
        "DNSSEC validations by outcome",
        "Queries per second by transport (UDP, TCP, DoT, DoH)",
        "Encrypted DNS: connections and TLS handshakes",
    ] {
        let panel = panels
            .iter()
            .find(|p| p["title"] == wanted)
            .unwrap_or_else(|| panic!("no panel {wanted:?} among {titles:?}"));
        assert!(
            !exprs(panel).is_empty(),
            "panel {wanted:?} has no PromQL target"
        );
    }
    // Grafana needs unique ids and a place on the grid for each panel.
    let ids: BTreeSet<i64> = panels.iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in &panels {
        for key in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][key].is_u64(), "{} gridPos.{key}", p["title"]);
        }
    }
    // Latency shows both quantiles for both cache outcomes.
    let latency = panels
        .iter()
        .find(|p| p["title"] == "Latency p50/p99 (cache hits and misses)")
        .map(exprs)
        .unwrap_or_default()
        .join("\n");
    assert!(
        latency.contains("histogram_quantile(0.5") && latency.contains("histogram_quantile(0.99")
    );
    assert!(latency.contains("cache") && latency.contains(names::QUERY_DURATION));
    // Queries go through the data source and instance variables.
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "job", "instance"] {
        assert!(vars.contains(&v), "variable {v} in {vars:?}");
    }
    for p in &panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for e in exprs(p) {
            assert!(e.contains("instance=~\"$instance\""), "{}: {e}", p["title"]);
        }
    }
}

#[test]
fn every_dashboard_query_is_valid_promql_over_exported_metrics() {
    let dash = dashboard();
    let exported = exported();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for p in panels(&dash) {
        for e in exprs(&p) {
            for name in metric_names(&e) {
                assert!(
                    exported.contains(&name),
                    "panel {} uses {name}, which taproot does not export",
                    p["title"]
                );
            }
            // Grafana's variables, as Grafana would fill them in.
            let concrete = e
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$job", "taproot")
                .replace("$instance", ".*");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:expr{n}\n        expr: {}\n",
                serde_json::to_string(&concrete).expect("a JSON string is YAML")
            ));
        }
    }
    assert!(n >= 10, "only {n} queries in the dashboard");
    let dir = TempDir::new("dashboard-rules");
    let file = dir.write("dashboard.rules.yml", &rules);
    let out = Command::new(tool("promtool"))
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_scrape_config_and_rules_pass_promtool() {
    let config = deploy("prometheus/prometheus.yml");
    let text = std::fs::read_to_string(&config).expect("read prometheus.yml");
    assert!(text.contains("job_name: taproot"), "a taproot job");
    assert!(
        text.contains("127.0.0.1:9153"),
        "the default metrics.listen"
    );
    // `check config` also checks the rule files it names.
    let out = Command::new(tool("promtool"))
        .arg("check")
        .arg("config")
        .arg(&config)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = std::fs::read_to_string(deploy("prometheus/taproot.rules.yml")).expect("rules");
    let exported = exported();
    for name in metric_names(&rules) {
        assert!(exported.contains(&name), "the rules use {name}");
    }
}
