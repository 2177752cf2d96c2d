//! What a server's reply means for the walk (RFC 1034 §5.3.3 step 4;
//! Unbound's `processQueryResponse`, the QUERY_RESP state): a function of
//! the classified reply and where the walk stands, with no network and no
//! cache, so the rules are tested alone (`fuzz/fuzz_targets/upstream_response.rs`
//! feeds it arbitrary bytes) and the driver ([`super::driver`]) only does
//! what it says.
//!
//! [`Minimisation`] is the other half of the walk's state: how much of the
//! name the next query shows (RFC 9156, relaxed: Unbound's
//! `qname-minimisation: yes` without `-strict`).

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::ResolveError;
use super::classify::Classified;
use crate::cache::{NegativeKind, Rank};
use crate::trace::MinimiseAction;

/// RFC 9156 §2.3: at most this many extra labels are added one at a time.
const MAX_MINIMISE_STEPS: u8 = 10;

/// A usable reply from one of a zone's servers.
#[derive(Debug)]
pub struct Reply {
    pub classified: Classified,
    pub aa: bool,
    /// The server that sent it (left out if its data proves bogus).
    pub server: IpAddr,
    /// The scrubbed additional section (priming keeps the root servers'
    /// addresses from it).
    pub additionals: Vec<Record>,
}

/// What the walk found for one name.
// One Step is returned per walk and consumed at once; boxing the SOA (a
// Record is ~300 bytes since hickory's DNSSEC types joined RData) would
// cost an allocation on every negative answer to save a memcpy.
// Records carry the RRSIGs over them, so a validator can check them and a
// DO client can be given them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    Answer {
        chain: Vec<Record>,
        rrset: Vec<Record>,
        /// NSEC/NSEC3 proof that a wildcard answer is the closest match.
        proof: Vec<Record>,
    },
    Cname {
        chain: Vec<Record>,
        target: Name,
    },
    Negative {
        kind: NegativeKind,
        chain: Vec<Record>,
        soa: Option<Record>,
        /// NSEC/NSEC3 records and the RRSIGs over them and the SOA.
        proof: Vec<Record>,
    },
}

/// What the walk found and where: not yet validated, not yet cached.
#[derive(Debug)]
pub struct Found {
    pub step: Step,
    /// The zone whose servers answered.
    pub zone: Name,
    /// The trust the answer earns once validated (RFC 2181 §5.4.1).
    pub rank: Rank,
    /// The server that gave the answer.
    pub server: IpAddr,
}

/// Where the walk stands when a reply arrives.
#[derive(Debug, Clone)]
pub struct Position {
    /// The cut whose servers were asked.
    pub zone: Name,
    /// Referrals followed so far.
    pub referrals: u32,
    /// `resolver.max_referral_depth`.
    pub max_referrals: u32,
    /// The query showed fewer labels than the question (RFC 9156).
    pub minimised: bool,
}

/// What the walk does next.
// Consumed at once, like [`Step`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// Follow a delegation one cut down (step 4b): cache its NS set and
    /// glue, keep its DS proof for the validator, ask the new cut.
    Descend {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
        proof: Vec<Record>,
    },
    /// A minimised query's answer: show another label, or the full name.
    Minimise(MinimiseAction),
    /// The answer to the full question (step 4a, or 4c for a CNAME):
    /// validate it, cache it, answer or restart.
    Finish(Found),
    /// The question fails here.
    Fail(ResolveError),
}

/// Decides what `reply`, from a server of `at.zone`, means for the walk.
pub fn on_response(reply: Reply, at: &Position) -> Next {
    let Reply {
        classified,
        aa,
        server,
        ..
    } = reply;
    // A last-resort answer reaches the walk only when no other server of
    // the zone gave a better one: it is then read like any other.
    let classified = match classified {
        Classified::LastResort { answer, .. } => *answer,
        other => other,
    };
    if let Classified::Referral {
        zone,
        ns,
        glue,
        proof,
    } = classified
    {
        if at.referrals >= at.max_referrals {
            return Next::Fail(ResolveError::ReferralDepth(at.max_referrals));
        }
        return Next::Descend {
            zone,
            ns,
            glue,
            proof,
        };
    }
    if at.minimised {
        return Next::Minimise(match classified {
            // The name exists and no cut is there: add a label (RFC 9156 §3).
            Classified::Answer { .. } | Classified::NoData { .. } => MinimiseAction::AddLabel,
            // Anything else: relaxed mode asks the full name.
            _ => MinimiseAction::FullName,
        });
    }
    let rank = if aa {
        Rank::AuthAnswer
    } else {
        Rank::NonAuthAnswer
    };
    let step = match classified {
        // The NS set in an answer's authority section is not cached.
        // Stored at a referral's rank or above, it replaced the
        // delegation the referral gave, so one answer from one server,
        // AA or not, could hand the whole zone (or a cut made up below
        // it) to any server it named. A delegation comes from the
        // parent's referral, the zone's own NS set from an answer to an
        // NS question: RFC 2181 §5.4.1 trusts the answer to the
        // question asked above anything a reply adds beside it.
        Classified::Answer {
            chain,
            rrset,
            proof,
        } => Step::Answer {
            chain,
            rrset,
            proof,
        },
        Classified::Cname { chain, target } => Step::Cname { chain, target },
        Classified::NxDomain { chain, soa, proof } => Step::Negative {
            kind: NegativeKind::NxDomain,
            chain,
            soa,
            proof,
        },
        Classified::NoData { chain, soa, proof } => Step::Negative {
            kind: NegativeKind::NoData,
            chain,
            soa,
            proof,
        },
        Classified::Referral { .. }
        | Classified::LastResort { .. }
        | Classified::Lame(_)
        | Classified::ServerError(_) => {
            // The cut's servers rule these out before the walk sees them.
            return Next::Fail(ResolveError::NoReachableAuthority(at.zone.to_string()));
        }
    };
    Next::Finish(Found {
        step,
        zone: at.zone.clone(),
        rank,
        server,
    })
}

/// RFC 9156 state: the next query asks `labels` labels of the name, as A,
/// until the full name is reached or minimisation is given up.
#[derive(Debug)]
pub struct Minimisation {
    /// Off by config, or given up for this question (relaxed mode).
    pub on: bool,
    labels: u8,
    /// Labels added below a cut, for [`MAX_MINIMISE_STEPS`].
    steps: u8,
}

/// The query a walk sends next.
#[derive(Debug)]
pub struct Ask {
    pub name: Name,
    pub rtype: RecordType,
    /// A minimised query: its failure is minimisation's to answer for.
    pub minimised: bool,
}

impl Minimisation {
    pub fn new(on: bool, cut: &Name) -> Minimisation {
        Minimisation {
            on,
            labels: cut.num_labels() + 1,
            steps: 0,
        }
    }

    /// At a new cut the name is shown one label below it.
    pub fn enter(&mut self, cut: &Name) {
        self.labels = cut.num_labels() + 1;
    }

    /// The query to send next for (qname, qtype).
    pub fn next(&self, qname: &Name, qtype: RecordType) -> Ask {
        let minimised =
            self.on && self.labels < qname.num_labels() && self.steps < MAX_MINIMISE_STEPS;
        if minimised {
            Ask {
                name: qname.trim_to(self.labels as usize),
                rtype: RecordType::A,
                minimised,
            }
        } else {
            Ask {
                name: qname.clone(),
                rtype: qtype,
                minimised,
            }
        }
    }

    /// Applies what [`on_response`] decided about a minimised query.
    pub fn learn(&mut self, action: MinimiseAction) {
        self.steps += 1;
        match action {
            MinimiseAction::AddLabel => self.labels += 1,
            MinimiseAction::FullName => self.on = false,
        }
    }
}

/// The name a negative answer is about: the last CNAME target, or the question.
pub(super) fn chain_end(qname: &Name, chain: &[Record]) -> Name {
    chain
        .iter()
        .rev()
        .find_map(|r| match &r.data {
            RData::CNAME(t) => Some(t.0.to_lowercase()),
            _ => None,
        })
        .unwrap_or_else(|| qname.to_lowercase())
}
