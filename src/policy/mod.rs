//! The policy engine: local zones and response policy zones, decided for
//! every client query before the answer cache is read.
//!
//! ```text
//!  client query ─► ACL ─► rate limit ─► class / meta-type checks
//!                   ─► local zones (longest match; AA=1, never upstream)
//!                   ─► RPZ, each [[rpz]] in config order, first match wins
//!                   ─► answer cache ─► resolution (walk)
//! ```
//!
//! Because the decision comes before the cache, a changed policy (a
//! reload, a zone transfer) applies to names already cached at once.
//!
//! - [`local`]: Unbound's local-zone types and the RFC 6761/6303 defaults;
//! - [`rpz`]: RPZ triggers and actions in a compact table;
//! - [`zonefile`]: the zone-file reader both use;
//! - [`render`]: policy answers in wire form;
//! - [`transfer`]: a secondary copy of a `primary` RPZ zone, kept current
//!   by AXFR/IXFR at its SOA refresh.
//!
//! [`Policy::decide`] allocates nothing for a name no policy touches.

pub mod local;
pub mod render;
pub mod rpz;
pub mod transfer;
pub mod zonefile;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{Config, RpzEde};
use local::LocalZones;
use rpz::{Action, RpzZone, Source};

/// A local zone or RPZ that cannot be built. Each variant names the config
/// key, and for RPZ files the file and line, so the operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid value for key \"local_zone[{index}].zone\": {problem}")]
    LocalZone { index: usize, problem: String },
    #[error(
        "invalid value for key \"local_zone[{index}].records[{record}]\" (zone {zone}): {problem}"
    )]
    LocalRecord {
        index: usize,
        zone: String,
        record: usize,
        problem: String,
    },
    #[error("invalid value for key \"rpz[{index}]\" (zone {zone}): {problem}")]
    Rpz {
        index: usize,
        zone: String,
        problem: String,
    },
    #[error(
        "invalid RPZ for key \"rpz[{index}].file\" (zone {zone}): {}{}: {problem}",
        .path.display(),
        .line.map(|n| format!(" line {n}")).unwrap_or_default()
    )]
    RpzFile {
        index: usize,
        zone: String,
        path: PathBuf,
        line: Option<usize>,
        problem: String,
    },
}

/// An answer the policy gives instead of the cache or a resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyAnswer {
    pub rcode: u8,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    /// RFC 8914 Extended DNS Error: INFO-CODE and text.
    pub ede: Option<(u16, String)>,
}

/// What the policy decided for one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No policy answers it: the cache, then resolution.
    Resolve,
    /// Send nothing (`deny`, `rpz-drop.`).
    Drop,
    /// `rpz-tcp-only.` over UDP: an empty reply with TC=1.
    TruncateOverUdp,
    /// Answer with this.
    Answer(PolicyAnswer),
    /// RPZ local data that is a CNAME: answer it, and the target's data as
    /// the resolver finds it (as BIND and Unbound do).
    Follow(PolicyAnswer, Name),
}

/// Which policy matched, for `taproot_policy_hits_total{zone, action}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub zone: Arc<str>,
    pub action: &'static str,
}

/// A verdict and the hit behind it (`None`: no policy matched).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub hit: Option<Hit>,
}

impl Decision {
    const NONE: Decision = Decision {
        verdict: Verdict::Resolve,
        hit: None,
    };
}

/// Local zones and RPZs, built from the config.
#[derive(Debug)]
pub struct Policy {
    pub local: LocalZones,
    pub rpz: Vec<Arc<RpzZone>>,
    /// Unique per build in this process (see [`Policy::stamp`]).
    id: u64,
    /// Bumped by every change of rules after the build (transfers).
    generation: Arc<AtomicU64>,
}

/// The next [`Policy`]'s id; 0 is never used, so a stamp is never 0.
static NEXT_POLICY_ID: AtomicU64 = AtomicU64::new(1);

impl Policy {
    /// Builds the policy: every local zone and every RPZ file, read now.
    pub fn from_config(config: &Config) -> Result<Policy, PolicyError> {
        Self::from_config_after(config, None)
    }

    /// [`Policy::from_config`] for a reload: an RPZ file is read again
    /// (changed or not), and a transferred zone (`primary`) keeps the rules
    /// `previous` holds for the same zone and primary until the next
    /// transfer replaces them.
    pub fn from_config_after(
        config: &Config,
        previous: Option<&Policy>,
    ) -> Result<Policy, PolicyError> {
        let local = LocalZones::from_config(&config.local_zone)?;
        let generation = Arc::new(AtomicU64::new(0));
        let mut zones = Vec::with_capacity(config.rpz.len());
        for (index, c) in config.rpz.iter().enumerate() {
            let started = std::time::Instant::now();
            let zone = RpzZone::load(index, c, generation.clone())?;
            if let (Source::Primary(_), Some(prev)) = (&zone.source, previous)
                && let Some(old) = prev
                    .rpz
                    .iter()
                    .find(|o| o.origin == zone.origin && o.source == zone.source)
            {
                zone.adopt_rules(old);
            }
            let rules = zone.rules();
            tracing::info!(
                zone = %zone.name,
                rules = rules.len(),
                skipped = rules.skipped,
                bytes = rules.heap_bytes(),
                ms = started.elapsed().as_millis() as u64,
                "response policy zone loaded"
            );
            zones.push(Arc::new(zone));
        }
        Ok(Policy {
            local,
            rpz: zones,
            id: NEXT_POLICY_ID.fetch_add(1, Ordering::Relaxed),
            generation,
        })
    }

    /// The `[[rpz]]` whose zone is `name` (for the transfer client).
    pub fn rpz_zone(&self, name: &str) -> Option<&Arc<RpzZone>> {
        let wanted = Name::from_ascii(name).ok().map(|n| rpz::lower_wire(&n))?;
        self.rpz.iter().find(|z| z.origin == wanted)
    }

    /// How many times rules changed since the build.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// This policy as it stands: different after a reload (a new policy)
    /// and after a transfer replaced a zone's rules. The answer cache keeps
    /// the stamp under which a cached question was found untouched, so a
    /// hit on it skips [`Policy::decide`] until the stamp changes. Read it
    /// *before* deciding: a transfer stores its rules before it bumps the
    /// generation, so a decision is never credited to a newer stamp than
    /// the rules it read.
    #[inline]
    pub fn stamp(&self) -> u64 {
        (self.id << 32) | (self.generation() & 0xffff_ffff)
    }

    /// The policy for `qname` (wire form as the client sent it) and
    /// `qtype`; `tcp` when it came over TCP. Local zones first, then each
    /// RPZ in order. Allocates nothing unless a policy matches.
    #[inline]
    pub fn decide(&self, qname: &[u8], qtype: u16, tcp: bool) -> Decision {
        let mut buf = [0u8; crate::wire::MAX_NAME_LEN];
        let n = qname.len().min(buf.len());
        for (o, b) in buf[..n].iter_mut().zip(qname) {
            *o = b.to_ascii_lowercase();
        }
        let lower = &buf[..n];
        let mut starts = [0u8; 128];
        let Some(labels) = zonefile::label_starts(lower, &mut starts) else {
            return Decision::NONE;
        };
        if let Some(zone) = self.local.find(lower, &starts, labels) {
            let verdict = zone.answer(lower, qname, qtype);
            if verdict != Verdict::Resolve {
                return Decision {
                    verdict,
                    hit: Some(Hit {
                        zone: zone.name.clone(),
                        action: zone.kind.as_str(),
                    }),
                };
            }
        }
        for zone in &self.rpz {
            let rules = zone.rules();
            let Some(hit) = rules.lookup(lower, &starts, labels) else {
                continue;
            };
            let found = Some(Hit {
                zone: zone.name.clone(),
                action: hit.action.as_str(),
            });
            let ede = match zone.ede {
                RpzEde::Blocked => Some((15, zone.name.to_string())),
                RpzEde::Filtered => Some((17, zone.name.to_string())),
                RpzEde::None => None,
            };
            let empty = |rcode: u8, ede| {
                Verdict::Answer(PolicyAnswer {
                    rcode,
                    answers: Vec::new(),
                    authority: Vec::new(),
                    ede,
                })
            };
            let verdict = match hit.action {
                Action::Passthru => Verdict::Resolve,
                Action::Nxdomain => empty(3, ede),
                Action::Nodata => empty(0, ede),
                Action::Drop => Verdict::Drop,
                Action::TcpOnly if tcp => Verdict::Resolve,
                Action::TcpOnly => Verdict::TruncateOverUdp,
                Action::LocalData(i) => {
                    match local::records_for(rules.local_data(i), qtype, Some(qname)) {
                        None => empty(0, ede),
                        Some(answers) => {
                            let target = match answers.first().map(|r| &r.data) {
                                Some(RData::CNAME(CNAME(t)))
                                    if RecordType::from(qtype) != RecordType::CNAME =>
                                {
                                    Some(t.clone())
                                }
                                _ => None,
                            };
                            let answer = PolicyAnswer {
                                rcode: 0,
                                answers,
                                authority: Vec::new(),
                                ede,
                            };
                            match target {
                                Some(t) => Verdict::Follow(answer, t),
                                None => Verdict::Answer(answer),
                            }
                        }
                    }
                }
            };
            return Decision {
                verdict,
                hit: found,
            };
        }
        Decision::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LocalZoneConfig, LocalZoneType, RpzConfig};

    fn wire(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        zonefile::name_to_wire(name, b"\x00", &mut v).unwrap();
        v
    }

    fn policy_with(rpz: &[(&str, &str)], local: Vec<LocalZoneConfig>) -> (Policy, Vec<PathBuf>) {
        let mut config = Config::default();
        let mut paths = Vec::new();
        for (i, (zone, text)) in rpz.iter().enumerate() {
            let path = std::env::temp_dir().join(format!(
                "taproot-policy-unit-{}-{i}-{zone}",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            config.rpz.push(RpzConfig {
                zone: zone.to_string(),
                file: path.display().to_string(),
                primary: String::new(),
                ede: RpzEde::Blocked,
            });
            paths.push(path);
        }
        config.local_zone = local;
        (Policy::from_config(&config).unwrap(), paths)
    }

    #[test]
    fn the_first_rpz_that_matches_wins_and_passthru_ends_the_search() {
        let (p, paths) = policy_with(
            &[
                (
                    "one.rpz",
                    "a.example CNAME *.\npass.example CNAME rpz-passthru.\n",
                ),
                ("two.rpz", "*.example CNAME .\n"),
            ],
            vec![],
        );
        let d = p.decide(&wire("a.example."), 1, false);
        assert_eq!(d.hit.as_ref().map(|h| &*h.zone), Some("one.rpz"));
        assert!(matches!(
            d.verdict,
            Verdict::Answer(PolicyAnswer { rcode: 0, .. })
        ));
        let d = p.decide(&wire("pass.example."), 1, false);
        assert_eq!(d.verdict, Verdict::Resolve);
        assert_eq!(d.hit.map(|h| h.action), Some("passthru"));
        let d = p.decide(&wire("b.example."), 1, false);
        assert_eq!(d.hit.as_ref().map(|h| &*h.zone), Some("two.rpz"));
        assert!(matches!(
            d.verdict,
            Verdict::Answer(PolicyAnswer { rcode: 3, .. })
        ));
        assert_eq!(
            p.decide(&wire("www.example.com."), 1, false),
            Decision::NONE
        );
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_local_zone_comes_before_rpz() {
        let (p, paths) = policy_with(
            &[("block.rpz", "*.home.arpa CNAME .\n")],
            vec![LocalZoneConfig {
                zone: "home.arpa".into(),
                kind: LocalZoneType::Static,
                records: vec!["nas A 192.0.2.10".into()],
            }],
        );
        let d = p.decide(&wire("NAS.home.arpa."), 1, false);
        let Verdict::Answer(a) = d.verdict else {
            panic!("{d:?}");
        };
        assert_eq!(a.answers.len(), 1);
        assert_eq!(d.hit.map(|h| h.action), Some("static"));
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn tcp_only_truncates_udp_and_resolves_tcp() {
        let (p, paths) = policy_with(&[("t.rpz", "slow.example CNAME rpz-tcp-only.\n")], vec![]);
        let name = wire("slow.example.");
        assert_eq!(p.decide(&name, 1, false).verdict, Verdict::TruncateOverUdp);
        assert_eq!(p.decide(&name, 1, true).verdict, Verdict::Resolve);
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_bad_rpz_line_names_the_key_the_file_and_the_line() {
        let path = std::env::temp_dir().join(format!("taproot-policy-bad-{}", std::process::id()));
        std::fs::write(&path, "ok CNAME .\nbad A not-an-address\n").unwrap();
        let mut config = Config::default();
        config.rpz.push(RpzConfig {
            zone: "block.rpz".into(),
            file: path.display().to_string(),
            primary: String::new(),
            ede: RpzEde::Blocked,
        });
        let err = Policy::from_config(&config).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains("rpz[0].file"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
