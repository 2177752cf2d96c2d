//! Iterative referral mode: instead of recursing, hand the client the
//! closest servers taproot knows, and let it walk on (the seed's "Iterative
//! DNS Query" diagram, RFC 1034 §4.3.1 for a server that does not recurse).
//!
//! Cached answers (positive or negative) are returned as they are. Otherwise
//! the answer is a referral: NOERROR, no answer, the NS RRset of the deepest
//! cached zone cut in the authority section and its servers' addresses in the
//! additional section. When only the root is known, one query to a root
//! server fetches the TLD's referral; taproot never walks further for the client.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::classify::Classified;
use super::cut::Persistence;
use super::{Request, ResolveError, Resolver};
use crate::cache::{Cached, Delegation, NegativeKind, Rank, to_wire};
use crate::dnssec::Security;
use crate::wire::ClientQuery;

/// TTL given to NS and address records taken from the root hints (named.root uses 3600000).
const HINTS_TTL: u32 = 3_600_000;

/// Builds the answer to `q` in referral mode. `ra` is the RA bit to set.
/// `None` when it cannot be encoded (see [`to_wire`]).
pub async fn answer(
    resolver: &Resolver,
    q: &ClientQuery<'_>,
    name: &Name,
    ra: bool,
) -> Option<Vec<u8>> {
    let qtype = RecordType::from(q.qtype);
    let mut msg = Message::new(q.id, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_desired = q.rd();
    msg.metadata.recursion_available = ra;
    msg.metadata.checking_disabled = q.cd();
    msg.add_query(Query::query(name.clone(), qtype));

    if from_cache(resolver, name, qtype, &mut msg) {
        return to_wire(&msg);
    }
    let cut = resolver.cache.closest_delegation(name, false);
    if cut.as_ref().is_none_or(|c| c.zone.is_root()) {
        if let Err(e) = resolver.refer_from_root(name).await {
            debug!(qname = %name, error = %e, "root referral failed");
        }
        if from_cache(resolver, name, qtype, &mut msg) {
            return to_wire(&msg);
        }
    }
    match resolver.cache.closest_delegation(name, false) {
        Some(cut) => {
            if let Some(ns) = resolver.cache.rrset(&cut.zone, RecordType::NS) {
                msg.authorities = ns.records;
            }
            for server in &cut.servers {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Some(set) = resolver.cache.rrset(&server.name, rtype) {
                        msg.additionals.extend(set.records);
                    }
                }
            }
        }
        None => {
            // Nothing cached, not even the root: refer to the hints.
            for hint in &resolver.hints {
                msg.authorities.push(Record::from_rdata(
                    Name::root(),
                    HINTS_TTL,
                    RData::NS(NS(hint.name.clone())),
                ));
                for addr in &hint.addrs {
                    let data = match addr {
                        std::net::IpAddr::V4(v4) => RData::A(A(*v4)),
                        std::net::IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                    };
                    msg.additionals
                        .push(Record::from_rdata(hint.name.clone(), HINTS_TTL, data));
                }
            }
        }
    }
    to_wire(&msg)
}

/// Fills `msg` from cached data for (name, type): the RRset, a CNAME for
/// the client to follow, or a negative answer with its SOA (the same
/// lookup the walk makes, [`crate::cache::Cache::lookup`]).
fn from_cache(resolver: &Resolver, name: &Name, qtype: RecordType, msg: &mut Message) -> bool {
    match resolver.cache.lookup(name, qtype, false) {
        Some(Cached::Rrset(records, _) | Cached::Cname(records, _, _)) => {
            msg.answers = records;
            true
        }
        Some(Cached::Negative(neg)) => {
            msg.metadata.response_code = match neg.kind {
                NegativeKind::NxDomain => ResponseCode::NXDomain,
                NegativeKind::NoData => ResponseCode::NoError,
            };
            msg.authorities = vec![neg.soa];
            true
        }
        None => false,
    }
}

impl Resolver {
    /// Iterative referral mode's single upstream step: ask a root server
    /// once about `name` and cache the referral (or NXDOMAIN) it gives.
    /// Uses the hints when the root NS set is not cached, so no priming
    /// query is spent.
    pub async fn refer_from_root(&self, name: &Name) -> Result<(), ResolveError> {
        let mut req = Request::new(&self.config);
        req.queries_left = 1 + self.config.retries;
        let root = self
            .cache
            .closest_delegation(&Name::root(), true)
            .map(|d| self.with_usable_addresses(d))
            .filter(Delegation::has_addresses)
            .unwrap_or_else(|| self.hints_delegation());
        let (sname, stype) = if self.config.qname_minimisation && name.num_labels() > 1 {
            (name.trim_to(1), RecordType::A)
        } else {
            (name.clone(), RecordType::NS)
        };
        let addrs = root.addresses();
        let root = super::cut::Cut::new(root);
        let reply = self
            .ask_servers(&root, &addrs, &sname, stype, &mut req, Persistence::Full)
            .await?;
        match reply.classified {
            Classified::Referral { ns, glue, .. } => {
                self.cache_records(&ns, Rank::Referral, Security::Indeterminate);
                self.cache_records(&glue, Rank::Additional, Security::Indeterminate);
            }
            // Unvalidated, so kept only when validation is off.
            Classified::NxDomain { soa, .. } if !self.validation.enabled => {
                // RFC 8020: nothing exists below a name that does not exist.
                self.cache_negative(
                    name,
                    RecordType::A,
                    NegativeKind::NxDomain,
                    soa,
                    Vec::new(),
                    Security::Indeterminate,
                );
            }
            _ => {}
        }
        Ok(())
    }
}
