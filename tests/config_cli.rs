//! The operator interface of the binary: `taproot check-config`, the order
//! defaults < file < `TAPROOT_*` environment < command-line flags, and what a
//! bad config says (one line naming the file, the key and the problem, exit
//! status 2, never a panic).

mod support;

use std::process::{Command, Output};

use support::e2e::{TempDir, scrub_env, taproot_binary};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/taproot.toml");

/// Runs the binary with `args` and only the `TAPROOT_*` variables in `env`.
fn taproot(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(taproot_binary());
    scrub_env(&mut command);
    command.args(args).envs(env.iter().copied());
    command.output().expect("run the taproot binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of `key = …` under `[section]` in TOML output.
fn value(toml: &str, section: &str, key: &str) -> Option<String> {
    let table: toml::Table = toml.parse().expect("check-config prints TOML");
    table
        .get(section)?
        .get(key)
        .map(|v| v.to_string().trim_matches('"').to_string())
}

#[test]
fn check_config_accepts_the_shipped_file_and_prints_the_effective_config() {
    let out = taproot(&["check-config", "--config", SHIPPED], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(value(&text, "cache", "size_mb").as_deref(), Some("256"));
    assert_eq!(value(&text, "server", "mode").as_deref(), Some("recursive"));
    assert_eq!(
        value(&text, "metrics", "listen").as_deref(),
        Some("127.0.0.1:9153")
    );
}

#[test]
fn an_unknown_key_exits_two_naming_the_key_and_the_file() {
    let dir = TempDir::new("cfg");
    let path = dir.write("bad.toml", "[cache]\nsize_mib = 12\n");
    let path_s = path.display().to_string();
    let out = taproot(&["check-config", "--config", &path_s], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("size_mib"), "names the key: {err}");
    assert!(err.contains("bad.toml"), "names the file: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_trust_anchor_file_exits_two_naming_the_key_the_file_and_the_line() {
    let dir = TempDir::new("cfg");
    let anchors = dir.write(
        "anchors.ds",
        "; the root\n\
         . 3600 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
         lab. IN DS 12345 13 2 not-hex\n",
    );
    let path = dir.write(
        "anchored.toml",
        &format!("[dnssec]\ntrust_anchor_file = \"{}\"\n", anchors.display()),
    );
    let out = taproot(
        &["check-config", "--config", &path.display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("dnssec.trust_anchor_file"),
        "names the key: {err}"
    );
    assert!(
        err.contains("anchors.ds line 3"),
        "names the file and line: {err}"
    );
    assert!(
        err.contains("anchored.toml"),
        "names the config file: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // A missing file is named too.
    let missing = dir.write(
        "missing.toml",
        "[dnssec]\ntrust_anchor_file = \"/nonexistent/anchors\"\n",
    );
    let out = taproot(
        &["check-config", "--config", &missing.display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/anchors"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_nonsense_listen_address_exits_two_naming_the_key() {
    let dir = TempDir::new("cfg");
    let path = dir.write("listen.toml", "[server]\nlisten = [\"nonsense\"]\n");
    let out = taproot(
        &["check-config", "--config", &path.display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("server.listen"), "names the key: {err}");
    assert!(err.contains("listen.toml"), "names the file: {err}");
}

#[test]
fn a_zero_cache_size_exits_two_with_the_reason() {
    let dir = TempDir::new("cfg");
    let path = dir.write("zero.toml", "[cache]\nsize_mb = 0\n");
    let out = taproot(
        &["check-config", "--config", &path.display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cache.size_mb"), "{err}");
    assert!(err.contains("at least 1 MiB"), "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    let out = taproot(
        &["check-config", "--config", "/nonexistent/taproot.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/taproot.toml"));
}

#[test]
fn the_environment_beats_the_file_and_flags_beat_both() {
    let dir = TempDir::new("cfg");
    let path = dir.write(
        "layers.toml",
        "[cache]\nsize_mb = 64\n[server]\nlisten = [\"127.0.0.1:5301\"]\n[log]\nlevel = \"warn\"\n",
    );
    let path_s = path.display().to_string();

    let file_only = stdout(&taproot(&["check-config", "--config", &path_s], &[]));
    assert_eq!(value(&file_only, "cache", "size_mb").as_deref(), Some("64"));
    assert_eq!(value(&file_only, "log", "level").as_deref(), Some("warn"));

    let env = [
        ("TAPROOT_CACHE__SIZE_MB", "512"),
        ("TAPROOT_LOG__LEVEL", "debug"),
    ];
    let with_env = stdout(&taproot(&["check-config", "--config", &path_s], &env));
    assert_eq!(value(&with_env, "cache", "size_mb").as_deref(), Some("512"));
    assert_eq!(value(&with_env, "log", "level").as_deref(), Some("debug"));

    let out = taproot(
        &[
            "--config",
            &path_s,
            "--log-level",
            "error",
            "--listen",
            "127.0.0.1:5302",
            "check-config",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let with_flags = stdout(&out);
    assert_eq!(value(&with_flags, "log", "level").as_deref(), Some("error"));
    assert!(with_flags.contains("127.0.0.1:5302"), "{with_flags}");
    assert!(!with_flags.contains("127.0.0.1:5301"), "{with_flags}");
    // A key no flag sets keeps the environment's value.
    assert_eq!(
        value(&with_flags, "cache", "size_mb").as_deref(),
        Some("512")
    );
}

#[test]
fn a_bad_environment_value_is_named_too() {
    let out = taproot(
        &["check-config", "--config", SHIPPED],
        &[("TAPROOT_CACHE__SIZE_MB", "lots")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cache.size_mb"), "{err}");
    assert!(
        err.contains("TAPROOT_"),
        "names the environment as the source: {err}"
    );
}

#[test]
fn version_and_help_answer() {
    let v = taproot(&["--version"], &[]);
    assert!(v.status.success());
    assert!(stdout(&v).contains(env!("CARGO_PKG_VERSION")));
    let h = taproot(&["--help"], &[]);
    assert!(h.status.success());
    assert!(stdout(&h).contains("check-config"));
}

#[test]
fn a_port_already_in_use_exits_non_zero_naming_the_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = TempDir::new("cfg");
    let hints = dir.write(
        "root.hints",
        ". 3600000 NS a.root.\na.root. 3600000 A 127.0.9.1\n",
    );
    let path = dir.write(
        "busy.toml",
        &format!(
            "[server]\nlisten = [\"{addr}\"]\n[resolver]\nroot_hints_file = \"{}\"\n[metrics]\nlisten = \"\"\n",
            hints.display()
        ),
    );
    let out = taproot(&["--config", &path.display().to_string()], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&addr), "names the address: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_shared_cache_with_both_url_and_cluster_exits_two_naming_the_key_and_the_file() {
    let dir = TempDir::new("cfg");
    let path = dir.write(
        "fleet.toml",
        "[cache.shared]\nurl = \"redis://127.0.0.1:6379\"\ncluster = [\"redis://127.0.0.1:7000\"]\n",
    );
    let path_s = path.display().to_string();
    let out = taproot(&["check-config", "--config", &path_s], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cache.shared.url"), "names the key: {err}");
    assert!(err.contains(&path_s), "names the file: {err}");
}

#[test]
fn a_shared_cache_url_that_is_not_redis_exits_two() {
    let dir = TempDir::new("cfg");
    let path = dir.write("fleet.toml", "[cache.shared]\nurl = \"http://cache:80\"\n");
    let path_s = path.display().to_string();
    let out = taproot(&["check-config", "--config", &path_s], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cache.shared.url"), "names the key: {err}");
    assert!(err.contains("http://cache:80"), "quotes the value: {err}");
}

#[test]
fn an_unreadable_fleet_secret_exits_two_naming_the_key_and_the_secret_file() {
    let dir = TempDir::new("cfg");
    let missing = dir.path().join("no-such.key").display().to_string();
    let path = dir.write(
        "fleet.toml",
        &format!(
            "[cache.shared]\nurl = \"redis://127.0.0.1:6379\"\nkey_secret_file = \"{missing}\"\n"
        ),
    );
    let path_s = path.display().to_string();
    let out = taproot(&["check-config", "--config", &path_s], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cache.shared.key_secret_file"), "{err}");
    assert!(err.contains(&missing), "names the secret file: {err}");
    assert!(err.contains(&path_s), "names the config file: {err}");
}

#[test]
fn a_shared_cache_nothing_listens_on_is_still_a_valid_config() {
    // Redis being down is not a config error: check-config accepts it
    // (tests/shared_cache.rs starts and serves with it).
    let dir = TempDir::new("cfg");
    let port = support::e2e::free_port(&["127.0.0.1".parse().expect("literal")]);
    let path = dir.write(
        "fleet.toml",
        &format!("[cache.shared]\nurl = \"redis://127.0.0.1:{port}/0\"\n"),
    );
    let path_s = path.display().to_string();
    let out = taproot(&["check-config", "--config", &path_s], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("redis://127.0.0.1:{port}/0")));
}

/// `config/taproot.toml` documents the defaults; it must not drift from them.
#[test]
fn the_shipped_file_parses_to_exactly_the_built_in_defaults() {
    let text = std::fs::read_to_string(SHIPPED).expect("read config/taproot.toml");
    let shipped = taproot::config::Config::from_toml(&text).expect("the shipped file loads");
    assert_eq!(shipped, taproot::config::Config::default());
}
