//! Parent-side delegations: the NS set and glue a referral gave, kept apart
//! from what the child zone says about itself (Unbound's parent-side NS and
//! address cache, used by its `processLastResort`).
//!
//! The record cache lets the child's own data outrank the referral (RFC 2181
//! §5.4.1), which is right for answers but leaves a resolver stranded when
//! the child's data is broken: a child that lists a dead address for its own
//! NS name, or NS names that do not resolve, would make the parent's
//! working glue unreachable. The walk keeps each referral's cut here, as
//! the parent gave it, and asks those servers when every child-side server
//! has failed.

use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::{Delegation, Expiring, NameServer};
use crate::clock::Clock;

/// The most parent-side cuts remembered; the least used go first.
const MAX_CUTS: u64 = 50_000;
/// Longest a parent-side cut is kept, whatever its TTL says.
const MAX_TTL_S: u32 = 86_400;

pub struct ParentSide {
    cuts: Expiring<Delegation>,
}

impl ParentSide {
    pub fn new(clock: Clock) -> ParentSide {
        ParentSide {
            cuts: Expiring::new(clock, MAX_CUTS, MAX_TTL_S),
        }
    }

    /// Keeps the cut a referral gave: its NS names and the glue addresses
    /// it carried, for `ttl` seconds (the NS set's).
    pub fn insert(&self, zone: &Name, servers: &[(Name, Vec<IpAddr>)], ttl: u32) {
        let delegation = Delegation {
            zone: zone.to_lowercase(),
            servers: servers
                .iter()
                .map(|(name, addrs)| NameServer {
                    name: name.clone(),
                    addrs: addrs.clone(),
                })
                .collect(),
        };
        self.cuts.insert(delegation.zone.clone(), delegation, ttl);
    }

    /// The parent-side cut of `zone`, while it lives.
    pub fn get(&self, zone: &Name) -> Option<Delegation> {
        self.cuts.get(zone)
    }

    /// The glue addresses the parent side gave for the name server
    /// `host` itself, from the referral to whichever zone above it holds
    /// them (for `ns.example.net`, the `example.net` cut from `net.`).
    pub fn glue_for(&self, host: &Name) -> Vec<IpAddr> {
        let host = host.to_lowercase();
        let mut zone = host.base_name();
        let mut addrs = Vec::new();
        while !zone.is_root() {
            if let Some(cut) = self.cuts.get(&zone) {
                for s in cut.servers.iter().filter(|s| s.name == host) {
                    for a in &s.addrs {
                        if !addrs.contains(a) {
                            addrs.push(*a);
                        }
                    }
                }
            }
            zone = zone.base_name();
        }
        addrs
    }

    pub fn flush_all(&self) {
        self.cuts.flush_all();
    }

    /// Cuts kept.
    pub fn len(&self) -> u64 {
        self.cuts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty()
    }

    /// Forgets the cut of `name`, and with `subtree` every cut below it.
    pub fn flush_name(&self, name: &Name, subtree: bool) {
        self.cuts.flush_where(|zone| {
            if subtree {
                name.zone_of(zone)
            } else {
                zone == name
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_lives_for_its_ttl() {
        let clock = Clock::manual();
        let p = ParentSide::new(clock.clone());
        let zone = Name::from_ascii("Example.lab.").expect("name");
        let ns = Name::from_ascii("ns.example.lab.").expect("name");
        p.insert(&zone, &[(ns, vec!["127.0.0.5".parse().expect("ip")])], 60);
        let got = p.get(&Name::from_ascii("example.lab.").expect("name"));
        assert_eq!(got.map(|d| d.servers[0].addrs.len()), Some(1));
        clock.advance(60_000);
        assert!(p.get(&zone).is_none());
    }
}
