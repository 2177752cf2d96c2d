//! Zones whose servers the operator names: `[[forward]]` and `[[stub]]`.
//!
//! Unbound keeps forward zones in `iterator/iter_fwd.c` and stub zones
//! beside the root hints in `iterator/iter_hints.c`; both are consulted
//! before the cache's delegations. taproot does the same in the driver's
//! `find_cut`, with the longest matching zone winning:
//!
//! - a **forward** zone answers every question at or below it: its servers
//!   are asked with RD=1 (and CD=1 when taproot validates, RFC 4035
//!   §3.2.2), they recurse, and no cached cut below the zone is used;
//! - a **stub** zone only replaces the referral: its servers are asked
//!   with RD=0 like any authoritative server, and a cut below it learnt
//!   from their referrals is used from the cache as usual.
//!
//! The servers are the operator's choice, so the loopback and private
//! address filter that guards referrals (`resolver.allow_loopback_upstreams`)
//! does not apply to them, and each keeps its own port.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::tls::{DOT_PORT, TlsConfigError, TlsUpstream};
use crate::cache::{Delegation, NameServer};
use crate::config::{Config, parse_server};

/// How a configured zone's servers are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Recursive servers: RD=1, their answer is final.
    Forward,
    /// Authoritative servers: RD=0, referrals below are followed.
    Stub,
}

/// One `[[forward]]` or `[[stub]]` entry, ready to be asked.
#[derive(Debug)]
pub struct RouteZone {
    pub zone: Name,
    pub kind: RouteKind,
    pub servers: Vec<SocketAddr>,
    /// False: nothing at or below the zone is validated (RFC 7646).
    pub dnssec: bool,
    /// DNS over TLS to the servers (forward zones with `tls_name`).
    pub tls: Option<TlsUpstream>,
}

impl RouteZone {
    /// The zone's servers as a cut. They have no NS names; each is listed
    /// under the zone's own name, which is what a trace shows for them.
    pub fn delegation(&self) -> Delegation {
        Delegation {
            zone: self.zone.clone(),
            servers: self
                .servers
                .iter()
                .map(|s| NameServer {
                    name: self.zone.clone(),
                    addrs: vec![s.ip()],
                })
                .collect(),
        }
    }

    /// The port `ip` listens on (each address is listed once per zone).
    pub fn port_of(&self, ip: IpAddr) -> Option<u16> {
        self.servers.iter().find(|s| s.ip() == ip).map(|s| s.port())
    }

    pub fn forwards(&self) -> bool {
        self.kind == RouteKind::Forward
    }
}

/// Why the configured zones could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "key \"forward.tls_ca_file\"/\"forward.tls_name\", [[forward]] zone {zone:?}: {source}"
    )]
    Tls {
        zone: String,
        #[source]
        source: TlsConfigError,
    },
    #[error("[[{table}]] zone {zone:?}: {problem}")]
    Invalid {
        table: &'static str,
        zone: String,
        problem: String,
    },
}

/// Every configured zone, deepest first.
#[derive(Debug, Default)]
pub struct Routes {
    zones: Vec<Arc<RouteZone>>,
}

impl Routes {
    /// Builds the routes of `config` (`Config::validate` has checked
    /// names and addresses already).
    pub fn from_config(config: &Config) -> Result<Routes, RouteError> {
        let mut zones = Vec::new();
        for f in &config.forward {
            let tls = if f.tls_name.is_empty() {
                None
            } else {
                let ca = (!f.tls_ca_file.is_empty()).then(|| std::path::Path::new(&f.tls_ca_file));
                Some(
                    TlsUpstream::new(&f.tls_name, ca).map_err(|source| RouteError::Tls {
                        zone: f.zone.clone(),
                        source,
                    })?,
                )
            };
            let port = if tls.is_some() { DOT_PORT } else { 53 };
            zones.push(zone(
                "forward",
                &f.zone,
                &f.servers,
                port,
                RouteKind::Forward,
                f.dnssec,
                tls,
            )?);
        }
        for s in &config.stub {
            zones.push(zone(
                "stub",
                &s.zone,
                &s.servers,
                53,
                RouteKind::Stub,
                s.dnssec,
                None,
            )?);
        }
        zones.sort_by_key(|z: &Arc<RouteZone>| std::cmp::Reverse(z.zone.num_labels()));
        Ok(Routes { zones })
    }

    /// The deepest configured zone at or above `name`.
    pub fn lookup(&self, name: &Name) -> Option<&Arc<RouteZone>> {
        self.zones.iter().find(|z| z.zone.zone_of(name))
    }

    /// Whether `name` lies in a configured zone with `dnssec = false`.
    pub fn unvalidated(&self, name: &Name) -> bool {
        self.lookup(name).is_some_and(|z| !z.dnssec)
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    pub fn zones(&self) -> &[Arc<RouteZone>] {
        &self.zones
    }
}

fn zone(
    table: &'static str,
    zone: &str,
    servers: &[String],
    default_port: u16,
    kind: RouteKind,
    dnssec: bool,
    tls: Option<TlsUpstream>,
) -> Result<Arc<RouteZone>, RouteError> {
    let invalid = |problem: String| RouteError::Invalid {
        table,
        zone: zone.to_string(),
        problem,
    };
    let name = Name::from_ascii(zone)
        .map_err(|e| invalid(format!("not a domain name: {e}")))?
        .to_lowercase();
    let mut name = name;
    name.set_fqdn(true);
    let servers = servers
        .iter()
        .map(|s| parse_server(s, default_port).map_err(&invalid))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(RouteZone {
        zone: name,
        kind,
        servers,
        dnssec,
        tls,
    }))
}
