//! taproot as the system's resolver: glibc (`getent ahosts`) reads a
//! resolv.conf that points at taproot on 127.0.0.1:53 and resolves through
//! it, with a `search` domain applied.
//!
//! Port 53 and /etc/resolv.conf belong to the machine, so the whole scene
//! runs in a network and mount namespace of its own (`unshare`): its own
//! loopback, NSD serving the lab tree on port 53 there, taproot on
//! 127.0.0.1:53, and resolv.conf bind-mounted over /etc/resolv.conf. Nothing
//! leaves the namespace.

mod support;

use std::process::Command;

use support::e2e::{ROOT_IP, ROOT_NS, TempDir, lab_tree, nsd_configs, taproot_binary, tool};

#[test]
fn getent_resolves_a_and_aaaa_through_taproot_with_a_search_domain() {
    let dir = TempDir::new("glibc");
    let zones = lab_tree();
    let confs = nsd_configs(&zones, 53, dir.path());
    let hints = dir.write(
        "root.hints",
        &format!(".\t3600000\tNS\t{ROOT_NS}\n{ROOT_NS}\t3600000\tA\t{ROOT_IP}\n"),
    );
    let config = dir.write(
        "taproot.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:53\"]\nthreads = 1\n\
             [resolver]\nroot_hints_file = \"{}\"\nallow_loopback_upstreams = true\n\
             [metrics]\nlisten = \"\"\n[dnssec]\nvalidation = false\n",
            hints.display()
        ),
    );
    let resolv = dir.write(
        "resolv.conf",
        "nameserver 127.0.0.1\nsearch corp.lab\noptions edns0 trust-ad timeout:2 attempts:2\n",
    );
    let mut script = String::from(
        "set -eu\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
         ip link set lo up\n",
    );
    let nsd = tool("nsd");
    for (_, conf) in &confs {
        script.push_str(&format!(
            "{} -d -c {} >{}.log 2>&1 &\n",
            nsd.display(),
            conf.display(),
            conf.display()
        ));
    }
    let dig = tool("dig");
    // Bounded waits: each NSD answers its zone, then taproot answers at all.
    for zone in &zones {
        script.push_str(&format!(
            "for i in $(seq 100); do {dig} +norecurse +time=1 +tries=1 -p 53 @{ip} {origin} SOA | grep -q 'status: NOERROR' && break; sleep 0.1; done\n",
            dig = dig.display(),
            ip = zone.server,
            origin = zone.origin,
        ));
    }
    script.push_str(&format!(
        "{taproot} --config {config} run >{log} 2>&1 &\n\
         for i in $(seq 100); do {dig} +time=1 +tries=1 @127.0.0.1 lab SOA | grep -q 'status: NOERROR' && break; sleep 0.1; done\n\
         mount --bind {resolv} /etc/resolv.conf\n\
         echo '== ahosts www.eng'\n\
         getent ahosts www.eng\n\
         echo '== ahosts docs.eng.corp.lab'\n\
         getent ahosts docs.eng.corp.lab\n\
         echo '== hosts nope.eng'\n\
         getent hosts nope.eng || echo \"exit $?\"\n",
        taproot = taproot_binary().display(),
        config = config.display(),
        log = dir.path().join("taproot.log").display(),
        dig = dig.display(),
        resolv = resolv.display(),
    ));
    let script_path = dir.write("scene.sh", &script);

    let mut unshare = Command::new("timeout");
    unshare.args(["120", "unshare", "--net", "--mount", "--fork"]);
    // Root needs no user namespace; anyone else maps themselves to root in one.
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        unshare.arg("--map-root-user");
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TAPROOT_") {
            unshare.env_remove(key);
        }
    }
    let out = unshare
        .arg("bash")
        .arg(&script_path)
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let taproot_log = std::fs::read_to_string(dir.path().join("taproot.log")).unwrap_or_default();
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}\ntaproot log:\n{taproot_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the scene failed: {context}");

    let section = |title: &str| -> Vec<String> {
        stdout
            .split("== ")
            .find(|s| s.starts_with(title))
            .map(|s| s.lines().skip(1).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let www = section("ahosts www.eng");
    assert!(
        www.iter().any(|l| l.starts_with("192.0.2.1 ")),
        "the A record, found through `search corp.lab`: {context}"
    );
    assert!(
        www.iter().any(|l| l.starts_with("2001:db8::1 ")),
        "the AAAA record, asked together with A: {context}"
    );
    assert!(
        www.iter().any(|l| l.ends_with("www.eng.corp.lab")),
        "glibc names the full name the search list made: {context}"
    );
    let docs = section("ahosts docs.eng.corp.lab");
    assert!(
        docs.iter().any(|l| l.starts_with("192.0.2.80 ")),
        "a CNAME into another zone resolves through glibc: {context}"
    );
    let nope = section("hosts nope.eng");
    assert_eq!(nope, ["exit 2"], "an unknown name is not found: {context}");
}
