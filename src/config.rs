//! The one typed configuration, loaded as built-in defaults < TOML file <
//! `TAPROOT_…` environment < command-line flags (figment), then validated.
//!
//! Every key has its default here, in one place; `config/taproot.toml`
//! documents the same keys for operators. Unknown keys are errors, so a typo
//! never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Where the daemon looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/taproot/taproot.toml";

/// The longest `resolver.failure_cache_ttl_s` may be: a failure remembered
/// longer outlives the outage it records. RFC 9520 §3.2 allows up to 5 min;
/// taproot stops at 30 s so a repaired zone is back within half a minute.
pub const MAX_FAILURE_CACHE_TTL_S: u32 = 30;

/// A config that cannot be used; each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parse and type errors: figment names the key and the file itself.
    #[error("{}", describe_load_error(.0))]
    Load(Box<figment::Error>),
    /// The file given with `--config` does not exist or cannot be read.
    #[error("config file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A local zone or RPZ that cannot be built: a bad record, an
    /// unreadable file, a line that is not a trigger and action.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A value that parses but makes no sense.
    #[error("invalid value for key \"{key}\" in {origin}: {problem}")]
    Invalid {
        key: &'static str,
        origin: String,
        problem: String,
    },
}

/// figment's own message writes a key with its profile in front
/// (`"default.cache.size_mb"`), or in the environment's spelling
/// (`"CACHE.SIZE_MB"`); taproot has no profiles, so the key is named as it
/// stands in the TOML file (`"cache.size_mb"`), whichever source set it.
fn describe_load_error(e: &figment::Error) -> String {
    let mut lines = Vec::new();
    for e in e.clone() {
        let mut line = e.kind.to_string();
        if !e.path.is_empty() {
            line.push_str(&format!(" for key {:?}", e.path.join(".")));
        }
        if let Some(md) = &e.metadata {
            match &md.source {
                Some(source) => line.push_str(&format!(" in {source} {}", md.name)),
                None => line.push_str(&format!(" in {}", md.name)),
            }
        }
        lines.push(line);
    }
    lines.join("; ")
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Load(Box::new(e))
    }
}

/// The problem with a Redis URL that does not parse.
fn e_url(url: &str) -> String {
    format!("{url:?} is not a Redis URL (redis://host:port/db, rediss://…, redis+unix:///path)")
}

/// How taproot answers a client that may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Walk the tree on a miss and return the final answer (RD honoured).
    Recursive,
    /// Never walk: answer from cache or return the closest known referral.
    Iterative,
}

/// What to do with a client whose address matches an ACL prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    /// Full service, recursion included.
    Allow,
    /// Cache answers and referrals only, never recursion (BIND's allow-recursion).
    AllowReferral,
    /// Answer REFUSED.
    Refuse,
    /// Send nothing back.
    Drop,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub resolver: ResolverConfig,
    pub cache: CacheConfig,
    pub acl: Vec<AclRule>,
    pub ratelimit: RateLimitConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub dnssec: DnssecConfig,
    pub trace: TraceConfig,
    /// `[[forward]]`: zones whose questions go to recursive servers.
    pub forward: Vec<ForwardConfig>,
    /// `[[stub]]`: zones whose cut comes from config, not a referral.
    pub stub: Vec<StubConfig>,
    /// `[[local_zone]]`: names answered from the config, with Unbound's
    /// zone types (see [`crate::policy::local`]).
    pub local_zone: Vec<LocalZoneConfig>,
    /// `[[rpz]]`: response policy zones, applied in order (see
    /// [`crate::policy::rpz`]).
    pub rpz: Vec<RpzConfig>,
}

/// `[[forward]]`: every question at or below `zone` is sent with RD=1 to
/// `servers` (Unbound's `forward-zone`), over TLS when `tls_name` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// `"."` forwards everything.
    pub zone: String,
    /// `"192.0.2.53"`, `"192.0.2.53:5353"`, `"[2001:db8::53]"`, `"[2001:db8::53]:853"`.
    pub servers: Vec<String>,
    /// DNS over TLS (RFC 7858) to the servers, port 853 unless given; their
    /// certificate must be valid for this name.
    #[serde(default)]
    pub tls_name: String,
    /// PEM roots for that check; empty = the system's roots.
    #[serde(default)]
    pub tls_ca_file: String,
    /// false: answers at and below the zone are not validated (a negative
    /// trust anchor, RFC 7646).
    #[serde(default = "yes")]
    pub dnssec: bool,
}

/// `[[stub]]`: the authoritative servers of `zone` (Unbound's `stub-zone`);
/// taproot iterates from them with RD=0 and follows referrals below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubConfig {
    pub zone: String,
    pub servers: Vec<String>,
    #[serde(default = "yes")]
    pub dnssec: bool,
}

fn yes() -> bool {
    true
}

/// A `[[forward]]`/`[[stub]]` server as written: an address with an
/// optional port (`default_port` when none is given).
pub fn parse_server(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| format!("{text:?} is not an address, address:port or [IPv6]:port"))
}

/// What a local zone does with the names in it: Unbound's `local-zone:`
/// types (unbound.conf(5)), plus `nodefault` to switch a built-in
/// RFC 6761/6303 zone off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalZoneType {
    /// Local records; every other name in the zone is NXDOMAIN (or NODATA
    /// when it owns records of another type), with the zone's SOA.
    Static,
    /// Local records; every other name is resolved as usual.
    Transparent,
    /// The apex's records answer every name at or below it.
    Redirect,
    /// REFUSED.
    Refuse,
    /// Nothing is sent back.
    Deny,
    /// NXDOMAIN, even for names with local records.
    AlwaysNxdomain,
    /// NOERROR with no records, even for names with local records.
    AlwaysNodata,
    /// Removes the built-in zone of this name; it is resolved as usual.
    Nodefault,
}

impl LocalZoneType {
    /// The spelling in the config file, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalZoneType::Static => "static",
            LocalZoneType::Transparent => "transparent",
            LocalZoneType::Redirect => "redirect",
            LocalZoneType::Refuse => "refuse",
            LocalZoneType::Deny => "deny",
            LocalZoneType::AlwaysNxdomain => "always_nxdomain",
            LocalZoneType::AlwaysNodata => "always_nodata",
            LocalZoneType::Nodefault => "nodefault",
        }
    }
}

/// One `[[local_zone]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalZoneConfig {
    /// The zone's apex, e.g. `"home.arpa"`.
    pub zone: String,
    #[serde(rename = "type")]
    pub kind: LocalZoneType,
    /// Records in zone-file syntax, one RR each:
    /// `"nas.home.arpa. 3600 IN A 192.168.1.10"`; owners relative to the zone.
    #[serde(default)]
    pub records: Vec<String>,
}

/// Which Extended DNS Error an RPZ answer carries (RFC 8914 §4.16, §4.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RpzEde {
    /// INFO-CODE 15, Blocked: the operator's own policy.
    #[default]
    Blocked,
    /// INFO-CODE 17, Filtered: a filter the client asked for.
    Filtered,
    /// No EDE option.
    None,
}

/// One `[[rpz]]`: a response policy zone, from a file or a primary server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpzConfig {
    /// The policy zone's origin; its name in logs, metrics and EDE text.
    pub zone: String,
    /// An RPZ zone file; exactly one of `file` and `primary` is set.
    #[serde(default)]
    pub file: String,
    /// `address:port` of a server to transfer the zone from (AXFR/IXFR).
    #[serde(default)]
    pub primary: String,
    #[serde(default)]
    pub ede: RpzEde,
}

/// `[trace]`: resolution traces (`GET /trace/…` on the admin listener).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// How many traces of questions that ended in SERVFAIL (bogus among
    /// them) are kept for `GET /trace/recent`; 0 keeps none and records
    /// nothing on the miss path.
    pub keep_failures: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig { keep_failures: 32 }
    }
}

/// The most failure traces `[trace] keep_failures` may keep (each holds
/// a few kilobytes).
pub const MAX_KEEP_FAILURES: usize = 4096;

/// `[server]`: the client-facing side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// UDP and TCP are served on each address.
    pub listen: Vec<SocketAddr>,
    pub mode: Mode,
    /// UDP worker threads per listen address; 0 means one per core.
    pub threads: usize,
    /// A TCP connection with no query for this long is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout_ms: u64,
    /// Open TCP connections across all clients.
    pub tcp_max_connections: usize,
    /// Open TCP connections from one client address.
    pub tcp_max_connections_per_client: usize,
    /// Resolutions in flight at once; beyond it new misses get SERVFAIL.
    pub max_inflight_resolutions: usize,
    /// On SIGTERM, how long in-flight queries may still finish.
    pub shutdown_grace_ms: u64,
    /// DNS over TLS (RFC 7858) is served on each address, e.g. `0.0.0.0:853`.
    pub listen_tls: Vec<SocketAddr>,
    /// DNS over HTTPS (RFC 8484) is served on each address, e.g. `0.0.0.0:443`.
    pub listen_https: Vec<SocketAddr>,
    /// The URI path of DNS over HTTPS (RFC 8484 §3 leaves it to the server).
    pub https_path: String,
    /// `[server.tls]`: the certificate of the TLS and HTTPS listeners.
    pub tls: TlsConfig,
}

/// `[server.tls]`: what DNS over TLS and DNS over HTTPS present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM chain, leaf first.
    pub certificate_file: String,
    /// PEM private key (PKCS #8, SEC1 or PKCS #1).
    pub key_file: String,
    /// The name clients authenticate; when set, taproot advertises its
    /// encrypted listeners for Discovery of Designated Resolvers (RFC 9462).
    pub name: String,
}

/// `[resolver]`: the walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Empty: the built-in IANA root servers; else a named.root-format file.
    pub root_hints_file: String,
    /// Root server addresses given inline; used when non-empty and no file is set.
    pub root_hints: Vec<std::net::IpAddr>,
    /// Port of upstream authoritative servers (53; tests use another).
    pub upstream_port: u16,
    /// Query servers on loopback and private addresses (Unbound's do-not-query-localhost: no).
    pub allow_loopback_upstreams: bool,
    /// RFC 9156 QNAME minimisation (relaxed).
    pub qname_minimisation: bool,
    /// The most any one upstream attempt waits; the real wait is the
    /// server's RTO (see [`crate::resolve::infra`]), up to this.
    pub upstream_timeout_ms: u64,
    /// Times one question sends again to a server that timed out, each
    /// with its backed-off RTO (the zone's other servers are tried in
    /// between). 9: Unbound's 5 attempts per server (`outbound-msg-retry`)
    /// of up to two UDP sends each.
    pub retries: u32,
    /// The RTO a server backs off to at most; a server there is down and
    /// only probed (Unbound's `infra-cache-max-rtt`).
    pub infra_max_rtt_ms: u32,
    /// Total time for one client question before SERVFAIL.
    pub query_budget_ms: u64,
    /// Upstream queries for one client question (NXNSAttack bound; Unbound's max-sent-count).
    pub max_upstream_queries: u32,
    /// Seconds a SERVFAIL is remembered per (name, type) (RFC 9520); 0 is off.
    pub failure_cache_ttl_s: u32,
    /// Zone cuts followed for one name.
    pub max_referral_depth: u32,
    /// Glueless NS names resolved per delegation.
    pub max_glueless_per_delegation: u32,
    /// CNAME/DNAME links followed before SERVFAIL.
    pub max_cname_chain: u32,
    /// EDNS payload size advertised upstream (DNS flag day 2020).
    pub edns_buffer_size: u16,
    /// 0x20 case randomisation of upstream query names.
    pub use_0x20: bool,
}

/// `[dnssec]`: validation (RFC 4033–4035).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnssecConfig {
    /// Validate answers under a trust anchor; bogus ones become SERVFAIL.
    pub validation: bool,
    /// Empty: the root's KSK-2017 and KSK-2024; else DS/DNSKEY lines, one a line.
    pub trust_anchor_file: String,
    /// Names below which answers are not validated (RFC 7646).
    pub negative_trust_anchors: Vec<String>,
    /// NSEC3 chains hashed more often prove nothing: insecure (RFC 9276).
    pub max_nsec3_iterations: u16,
}

impl Default for DnssecConfig {
    fn default() -> Self {
        DnssecConfig {
            validation: true,
            trust_anchor_file: String::new(),
            negative_trust_anchors: Vec::new(),
            max_nsec3_iterations: crate::dnssec::denial::DEFAULT_MAX_NSEC3_ITERATIONS,
        }
    }
}

impl DnssecConfig {
    /// The anchors validation starts from: the file's, or the root's built in.
    pub fn trust_anchors(&self) -> Result<crate::dnssec::TrustAnchors, crate::dnssec::AnchorError> {
        if self.trust_anchor_file.is_empty() {
            Ok(crate::dnssec::TrustAnchors::root())
        } else {
            crate::dnssec::TrustAnchors::from_file(Path::new(&self.trust_anchor_file))
        }
    }

    /// The negative trust anchors as names; the first that is not a name is the error.
    pub fn negative_anchors(&self) -> Result<Vec<hickory_proto::rr::Name>, String> {
        self.negative_trust_anchors
            .iter()
            .map(|text| {
                let mut name = hickory_proto::rr::Name::from_ascii(text)
                    .map_err(|e| format!("{text:?} is not a domain name: {e}"))?;
                name.set_fqdn(true);
                Ok(name.to_lowercase())
            })
            .collect()
    }
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub size_mb: u64,
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    /// Refresh an entry hit in the last 10% of its TTL.
    pub prefetch: bool,
    /// RFC 8767 serve-stale.
    pub serve_stale: bool,
    /// How long after expiry data may still be served stale.
    pub stale_window_s: u32,
    /// TTL on stale answers (RFC 8767 §4 suggests 30 s).
    pub stale_answer_ttl: u32,
    /// Client-side wait before a stale answer is sent (RFC 8767 suggests 1.8 s).
    pub client_timeout_ms: u64,
    /// Warm restart: the cache is written here on SIGTERM and every
    /// `snapshot_interval_s`, and read back at start; empty: off.
    pub snapshot_file: String,
    /// Seconds between snapshots while running; 0: only on SIGTERM.
    pub snapshot_interval_s: u64,
    /// `[cache.shared]`: the second tier a fleet of resolvers shares.
    pub shared: SharedCacheConfig,
}

/// `[cache.shared]`: a Redis (standalone, or a Redis Cluster) that a fleet
/// of taproot instances reads on a first-tier miss and writes after each
/// resolution (see `cache::shared`). Off while both `url` and `cluster`
/// are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedCacheConfig {
    /// `redis://host:6379/0`, `rediss://…` (TLS), `redis+unix:///run/redis.sock`.
    pub url: String,
    /// Redis Cluster seed nodes (`redis://10.0.0.1:6379`, …); one of `url`
    /// and `cluster`.
    pub cluster: Vec<String>,
    /// A file holding the HMAC key the fleet shares. Empty: a built-in
    /// key, and a Secure status read from the tier is not trusted.
    pub key_secret_file: String,
    /// How long one read may take; past it the read is a miss.
    pub timeout_ms: u64,
}

impl SharedCacheConfig {
    /// True when a Redis is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty() || !self.cluster.is_empty()
    }
}

impl Default for SharedCacheConfig {
    fn default() -> Self {
        SharedCacheConfig {
            url: String::new(),
            cluster: Vec::new(),
            key_secret_file: String::new(),
            timeout_ms: 10,
        }
    }
}

/// One `[[acl]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    pub prefix: IpNet,
    pub action: AclAction,
}

/// `[ratelimit]`: per client address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Queries a second per client; 0 turns rate limiting off.
    pub qps: u32,
    pub burst: u32,
    /// Every Nth limited query gets TC=1 instead of silence; 0 = drop all.
    pub slip: u32,
    /// Clients never limited. Loopback by default: a local process cannot
    /// be a spoofed source, and a busy host's own stub resolvers all share
    /// 127.0.0.1 (Unbound does not rate-limit clients at all by default).
    pub exempt: Vec<IpNet>,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Empty string turns the HTTP endpoint off.
    pub listen: String,
    /// Admin endpoints (`/cache/*`) answer only these client prefixes.
    pub admin_allow: Vec<IpNet>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `taproot=debug,warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![
                SocketAddr::from(([127, 0, 0, 1], 53)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53)),
            ],
            mode: Mode::Recursive,
            threads: 0,
            tcp_idle_timeout_ms: 10_000,
            tcp_max_connections: 1024,
            tcp_max_connections_per_client: 32,
            max_inflight_resolutions: 4096,
            shutdown_grace_ms: 2_000,
            listen_tls: Vec::new(),
            listen_https: Vec::new(),
            https_path: "/dns-query".into(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            root_hints_file: String::new(),
            root_hints: Vec::new(),
            upstream_port: 53,
            allow_loopback_upstreams: false,
            qname_minimisation: true,
            upstream_timeout_ms: 1_500,
            retries: 9,
            infra_max_rtt_ms: crate::resolve::infra::DEFAULT_MAX_RTT_MS,
            query_budget_ms: 10_000,
            max_upstream_queries: 32,
            failure_cache_ttl_s: 5,
            max_referral_depth: 30,
            max_glueless_per_delegation: 4,
            max_cname_chain: 12,
            edns_buffer_size: 1232,
            use_0x20: false,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            size_mb: 256,
            min_ttl: 0,
            max_ttl: 86_400,
            negative_max_ttl: 3_600,
            prefetch: true,
            serve_stale: true,
            stale_window_s: 86_400,
            stale_answer_ttl: 30,
            client_timeout_ms: 1_800,
            shared: SharedCacheConfig::default(),
            snapshot_file: String::new(),
            snapshot_interval_s: 300,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // Generous for a busy LAN host; a NAT gateway in front of many
        // clients may need more (or 0 to turn it off, like Unbound's default).
        RateLimitConfig {
            qps: 1_000,
            burst: 2_000,
            slip: 2,
            exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|p| p.parse().expect("literal prefix"))
                .collect(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9153".into(),
            admin_allow: vec![
                "127.0.0.0/8".parse().expect("literal prefix"),
                "::1/128".parse().expect("literal prefix"),
            ],
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            resolver: ResolverConfig::default(),
            cache: CacheConfig::default(),
            acl: default_acl(),
            ratelimit: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            dnssec: DnssecConfig::default(),
            trace: TraceConfig::default(),
            forward: Vec::new(),
            stub: Vec::new(),
            local_zone: Vec::new(),
            rpz: Vec::new(),
        }
    }
}

/// Loopback, RFC 1918 and ULA: never an open resolver out of the box.
fn default_acl() -> Vec<AclRule> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .iter()
    .map(|p| AclRule {
        prefix: p.parse().expect("literal prefix"),
        action: AclAction::Allow,
    })
    .collect()
}

/// Command-line values that override every other source; `None` leaves a key alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<ResolverOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOverrides>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ServerOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_tls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_https: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ResolverOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hints_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_port: Option<u16>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct MetricsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LogOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

impl Config {
    /// Loads defaults < `file` < `TAPROOT_*` environment < `overrides`, then validates.
    ///
    /// `file = None` reads [`DEFAULT_CONFIG_PATH`] when it exists, so a bare
    /// `taproot` runs on built-in defaults on a fresh machine.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let path = match file {
            Some(p) => {
                if let Err(source) = std::fs::metadata(p) {
                    return Err(ConfigError::Unreadable {
                        path: p.to_path_buf(),
                        source,
                    });
                }
                Some(p.to_path_buf())
            }
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = &path {
            figment = figment.merge(Toml::file_exact(p));
        }
        figment = figment
            .merge(Env::prefixed("TAPROOT_").split("__"))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract()?;
        let origin = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        config.validate(&origin)?;
        Ok(config)
    }

    /// Parses TOML text alone (on top of defaults); used by tests and reload checks.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()?;
        config.validate("inline TOML")?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges and relations between keys.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            origin: origin.to_string(),
            problem: problem.to_string(),
        };
        if self.server.listen.is_empty() {
            return Err(bad("server.listen", "at least one address is needed"));
        }
        self.validate_tls(origin)?;
        self.validate_shared_cache(origin)?;
        if self.trace.keep_failures > MAX_KEEP_FAILURES {
            return Err(bad(
                "trace.keep_failures",
                &format!("at most {MAX_KEEP_FAILURES} traces can be kept"),
            ));
        }
        if self.cache.size_mb == 0 {
            return Err(bad(
                "cache.size_mb",
                "the cache size must be at least 1 MiB",
            ));
        }
        if self.cache.min_ttl > self.cache.max_ttl {
            return Err(bad("cache.min_ttl", "must not exceed cache.max_ttl"));
        }
        if !self.cache.snapshot_file.is_empty() {
            let path = std::path::Path::new(&self.cache.snapshot_file);
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !dir.is_dir() {
                return Err(bad(
                    "cache.snapshot_file",
                    &format!(
                        "{} is not a directory taproot can write the snapshot in",
                        dir.display()
                    ),
                ));
            }
        }
        if self.resolver.upstream_port == 0 {
            return Err(bad("resolver.upstream_port", "port 0 cannot be queried"));
        }
        if !(512..=4096).contains(&self.resolver.edns_buffer_size) {
            return Err(bad(
                "resolver.edns_buffer_size",
                "must be between 512 and 4096",
            ));
        }
        if self.resolver.upstream_timeout_ms == 0 || self.resolver.query_budget_ms == 0 {
            return Err(bad(
                "resolver.upstream_timeout_ms",
                "timeouts must be greater than zero",
            ));
        }
        if u64::from(self.resolver.infra_max_rtt_ms) < self.resolver.upstream_timeout_ms {
            return Err(bad(
                "resolver.infra_max_rtt_ms",
                "must be at least resolver.upstream_timeout_ms",
            ));
        }
        if self.resolver.failure_cache_ttl_s > MAX_FAILURE_CACHE_TTL_S {
            return Err(bad(
                "resolver.failure_cache_ttl_s",
                &format!("must be at most {MAX_FAILURE_CACHE_TTL_S} seconds"),
            ));
        }
        if self.resolver.max_upstream_queries == 0 {
            return Err(bad("resolver.max_upstream_queries", "must be at least 1"));
        }
        if self.server.tcp_max_connections == 0 {
            return Err(bad("server.tcp_max_connections", "must be at least 1"));
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "metrics.listen",
                &format!("{:?} is not an address:port", self.metrics.listen),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(bad(
                "log.level",
                &format!("{:?} is not a level or tracing filter", self.log.level),
            ));
        }
        if !self.resolver.root_hints_file.is_empty()
            && !Path::new(&self.resolver.root_hints_file).exists()
        {
            return Err(bad(
                "resolver.root_hints_file",
                &format!("{} does not exist", self.resolver.root_hints_file),
            ));
        }
        if self.dnssec.validation
            && let Err(e) = self.dnssec.trust_anchors()
        {
            return Err(bad("dnssec.trust_anchor_file", &e.to_string()));
        }
        if let Err(problem) = self.dnssec.negative_anchors() {
            return Err(bad("dnssec.negative_trust_anchors", &problem));
        }
        for z in &self.local_zone {
            if let Err(e) = hickory_proto::rr::Name::from_ascii(&z.zone) {
                return Err(bad(
                    "local_zone.zone",
                    &format!("{:?} is not a domain name: {e}", z.zone),
                ));
            }
        }
        for (i, r) in self.rpz.iter().enumerate() {
            if let Err(e) = hickory_proto::rr::Name::from_ascii(&r.zone) {
                return Err(bad(
                    "rpz.zone",
                    &format!("rpz[{i}]: {:?} is not a domain name: {e}", r.zone),
                ));
            }
            if r.file.is_empty() == r.primary.is_empty() {
                return Err(bad(
                    "rpz.file",
                    &format!(
                        "rpz[{i}] ({}): set exactly one of \"file\" and \"primary\"",
                        r.zone
                    ),
                ));
            }
            if !r.primary.is_empty() && r.primary.parse::<SocketAddr>().is_err() {
                return Err(bad(
                    "rpz.primary",
                    &format!(
                        "rpz[{i}] ({}): {:?} is not an address:port",
                        r.zone, r.primary
                    ),
                ));
            }
        }
        self.validate_routes(origin)
    }

    /// `[server.tls]` and the encrypted listeners: a TLS or HTTPS listener
    /// needs a certificate and key that can be read (whether they load is
    /// checked at start, and on reload without refusing the rest).
    fn validate_tls(&self, origin: &str) -> Result<(), ConfigError> {
        let s = &self.server;
        let bad = |key: &'static str, problem: String| ConfigError::Invalid {
            key,
            origin: origin.to_string(),
            problem,
        };
        if !s.https_path.starts_with('/') || s.https_path.contains(['?', '#', ' ']) {
            return Err(bad(
                "server.https_path",
                format!(
                    "{:?} is not a path (it starts with / and has no query)",
                    s.https_path
                ),
            ));
        }
        if !s.tls.name.is_empty()
            && let Err(e) = hickory_proto::rr::Name::from_ascii(&s.tls.name)
        {
            return Err(bad(
                "server.tls.name",
                format!("{:?} is not a domain name: {e}", s.tls.name),
            ));
        }
        if s.listen_tls.is_empty() && s.listen_https.is_empty() {
            return Ok(());
        }
        for (key, file) in [
            ("server.tls.certificate_file", &s.tls.certificate_file),
            ("server.tls.key_file", &s.tls.key_file),
        ] {
            if file.is_empty() {
                return Err(bad(
                    key,
                    "is empty, but server.listen_tls or server.listen_https is set".into(),
                ));
            }
            if let Err(e) = std::fs::File::open(file) {
                return Err(bad(key, format!("cannot read {file}: {e}")));
            }
        }
        Ok(())
    }

    /// `[cache.shared]`: one of `url` and `cluster`, URLs the Redis client
    /// parses, a readable secret, a read deadline above zero.
    fn validate_shared_cache(&self, origin: &str) -> Result<(), ConfigError> {
        let shared = &self.cache.shared;
        let bad = |key: &'static str, problem: String| ConfigError::Invalid {
            key,
            origin: origin.to_string(),
            problem,
        };
        if !shared.url.is_empty() && !shared.cluster.is_empty() {
            return Err(bad(
                "cache.shared.url",
                "set either cache.shared.url or cache.shared.cluster, not both".into(),
            ));
        }
        if !shared.url.is_empty() && redis::Client::open(shared.url.as_str()).is_err() {
            return Err(bad("cache.shared.url", e_url(&shared.url)));
        }
        for node in &shared.cluster {
            if redis::Client::open(node.as_str()).is_err() {
                return Err(bad("cache.shared.cluster", e_url(node)));
            }
        }
        if !shared.key_secret_file.is_empty() {
            match std::fs::read(&shared.key_secret_file) {
                Err(e) => {
                    return Err(bad(
                        "cache.shared.key_secret_file",
                        format!("cannot read {}: {e}", shared.key_secret_file),
                    ));
                }
                Ok(key) if key.trim_ascii().len() < 16 => {
                    return Err(bad(
                        "cache.shared.key_secret_file",
                        format!(
                            "{} holds {} bytes; a fleet's key needs at least 16",
                            shared.key_secret_file,
                            key.trim_ascii().len()
                        ),
                    ));
                }
                Ok(_) => {}
            }
        }
        if shared.enabled() && shared.timeout_ms == 0 {
            return Err(bad(
                "cache.shared.timeout_ms",
                "a read needs a deadline above zero".into(),
            ));
        }
        Ok(())
    }

    /// `[[forward]]` and `[[stub]]`: names, servers, one entry per zone.
    fn validate_routes(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &'static str, zone: &str, problem: String| ConfigError::Invalid {
            key,
            origin: origin.to_string(),
            problem: format!("zone {zone:?}: {problem}"),
        };
        let mut zones: Vec<hickory_proto::rr::Name> = Vec::new();
        let entries = self
            .forward
            .iter()
            .map(|f| ("forward", &f.zone, &f.servers, !f.tls_name.is_empty()))
            .chain(
                self.stub
                    .iter()
                    .map(|s| ("stub", &s.zone, &s.servers, false)),
            );
        for (table, zone, servers, tls) in entries {
            let key = |field: &str| -> &'static str {
                match (table, field) {
                    ("forward", "zone") => "forward.zone",
                    ("forward", _) => "forward.servers",
                    (_, "zone") => "stub.zone",
                    _ => "stub.servers",
                }
            };
            let mut name = hickory_proto::rr::Name::from_ascii(zone)
                .map(|n| n.to_lowercase())
                .map_err(|e| bad(key("zone"), zone, format!("not a domain name: {e}")))?;
            name.set_fqdn(true);
            if zones.contains(&name) {
                return Err(bad(
                    key("zone"),
                    zone,
                    "listed twice in [[forward]]/[[stub]]".into(),
                ));
            }
            zones.push(name);
            if servers.is_empty() {
                return Err(bad(
                    key("servers"),
                    zone,
                    "at least one server is needed".into(),
                ));
            }
            let port = if tls {
                crate::resolve::tls::DOT_PORT
            } else {
                53
            };
            let mut ips = Vec::new();
            for server in servers {
                let addr = parse_server(server, port).map_err(|p| bad(key("servers"), zone, p))?;
                if addr.port() == 0 {
                    return Err(bad(key("servers"), zone, format!("{server:?}: port 0")));
                }
                if ips.contains(&addr.ip()) {
                    return Err(bad(
                        key("servers"),
                        zone,
                        format!("{} is listed twice (one port per address)", addr.ip()),
                    ));
                }
                ips.push(addr.ip());
            }
        }
        for f in &self.forward {
            if !f.tls_ca_file.is_empty() && f.tls_name.is_empty() {
                return Err(bad(
                    "forward.tls_ca_file",
                    &f.zone,
                    "is set but tls_name is empty (the CA checks the name)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The effective config as TOML, for `taproot check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// Worker threads after resolving `0` to the number of cores.
    pub fn worker_threads(&self) -> usize {
        match self.server.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.listen.parse().ok()
    }
}

impl ResolverConfig {
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
    pub fn query_budget(&self) -> Duration {
        Duration::from_millis(self.query_budget_ms)
    }
    pub fn failure_cache_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.failure_cache_ttl_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default()
            .validate("defaults")
            .expect("defaults are valid");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[cache]\nsize_mbb = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("size_mbb"), "{err}");
    }

    #[test]
    fn nonsense_listen_is_named() {
        let err = Config::from_toml("[server]\nlisten = [\"nonsense\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn forward_and_stub_servers_take_ports_and_bad_ones_are_named() {
        let c = Config::from_toml(
            "[[forward]]\nzone = \"corp.example\"\nservers = [\"192.0.2.1\", \"192.0.2.2:5353\", \"[2001:db8::53]\", \"[2001:db8::54]:53\"]\n\
             [[stub]]\nzone = \"internal.example\"\nservers = [\"192.0.2.9\"]\n",
        )
        .expect("valid");
        assert_eq!(c.forward[0].servers.len(), 4);
        assert!(c.forward[0].dnssec && c.stub[0].dnssec);
        assert_eq!(
            parse_server("[2001:db8::53]", 853),
            Ok("[2001:db8::53]:853".parse().expect("literal"))
        );
        assert_eq!(
            parse_server("192.0.2.2:5353", 53),
            Ok("192.0.2.2:5353".parse().expect("literal"))
        );
        for (text, key, says) in [
            (
                "[[forward]]\nzone = \"a.example\"\nservers = [\"nonsense\"]\n",
                "forward.servers",
                "\"nonsense\" is not an address",
            ),
            (
                "[[forward]]\nzone = \"a.example\"\nservers = []\n",
                "forward.servers",
                "at least one server",
            ),
            (
                "[[stub]]\nzone = \"a.example\"\nservers = [\"192.0.2.1\"]\n\
                 [[forward]]\nzone = \"A.example.\"\nservers = [\"192.0.2.1\"]\n",
                "stub.zone",
                "listed twice",
            ),
            (
                "[[stub]]\nzone = \"a..example\"\nservers = [\"192.0.2.1\"]\n",
                "stub.zone",
                "not a domain name",
            ),
            (
                "[[forward]]\nzone = \"a.example\"\nservers = [\"192.0.2.1\"]\ntls_ca_file = \"/x.pem\"\n",
                "forward.tls_ca_file",
                "tls_name is empty",
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn zero_cache_is_refused() {
        let err = Config::from_toml("[cache]\nsize_mb = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache.size_mb"), "{err}");
    }

    #[test]
    fn acl_parses() {
        let c =
            Config::from_toml("[[acl]]\nprefix = \"127.0.0.1/32\"\naction = \"allow_referral\"\n")
                .expect("valid");
        assert_eq!(c.acl.len(), 1);
        assert_eq!(c.acl[0].action, AclAction::AllowReferral);
    }
}
