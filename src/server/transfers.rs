//! The `[[rpz]]` zones taproot transfers from a `primary` instead of
//! reading a file: one [`transfer`] task per zone, kept current at the
//! zone's SOA refresh, whose every new copy becomes the zone's rules in
//! the running policy (so it applies to cached names at once).
//!
//! A reload keeps the tasks of zones whose name and primary did not
//! change (their copy and serial with them), stops the others and starts
//! the new ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use hickory_proto::rr::{Name, Record};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::handler::Handler;
use crate::config::Config;
use crate::policy::rpz::Rules;
use crate::policy::transfer::{self, ZoneTransfer};

/// The transfer tasks running, by (zone as configured, primary).
pub struct Transfers {
    running: Mutex<HashMap<(String, SocketAddr), CancellationToken>>,
    shutdown: CancellationToken,
}

impl Transfers {
    pub fn new(shutdown: CancellationToken) -> Transfers {
        Transfers {
            running: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Starts a task for each `[[rpz]]` with a primary that has none, and
    /// stops the tasks of zones no longer configured so.
    pub fn reconcile(&self, config: &Config, handler: &Arc<Handler>) {
        let wanted: Vec<(String, SocketAddr, Name)> = config
            .rpz
            .iter()
            .filter(|r| !r.primary.is_empty())
            .filter_map(|r| {
                // `Config::validate` has checked both already.
                let primary = r.primary.parse().ok()?;
                let mut origin = Name::from_ascii(&r.zone).ok()?;
                origin.set_fqdn(true);
                Some((r.zone.clone(), primary, origin))
            })
            .collect();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|key, token| {
            let keep = wanted.iter().any(|(z, p, _)| (z, p) == (&key.0, &key.1));
            if !keep {
                info!(zone = %key.0, primary = %key.1, "RPZ transfer stopped");
                token.cancel();
            }
            keep
        });
        for (zone, primary, origin) in wanted {
            let key = (zone.clone(), primary);
            if running.contains_key(&key) {
                continue;
            }
            let token = self.shutdown.child_token();
            let apply = Apply {
                zone: zone.clone(),
                handler: Arc::downgrade(handler),
                latest: Arc::new(AtomicU64::new(0)),
            };
            transfer::spawn(
                ZoneTransfer::new(origin, primary),
                move |origin, records| apply.update(origin, records),
                token.clone(),
            );
            info!(%zone, %primary, "RPZ transfer started");
            running.insert(key, token);
        }
    }
}

/// Turns a transferred copy into the zone's rules, off the transfer's
/// task: a million-record zone takes about a second to build.
struct Apply {
    zone: String,
    handler: Weak<Handler>,
    /// The newest copy handed over: an older build that finishes late is
    /// not applied over a newer one.
    latest: Arc<AtomicU64>,
}

impl Apply {
    fn update(&self, origin: &Name, records: &[Record]) {
        let seq = self.latest.fetch_add(1, Ordering::Relaxed) + 1;
        let (zone, origin, records) = (self.zone.clone(), origin.clone(), records.to_vec());
        let (handler, latest) = (self.handler.clone(), self.latest.clone());
        tokio::task::spawn_blocking(move || {
            let rules = match Rules::from_records(&origin, &records) {
                Ok(rules) => rules,
                Err(e) => {
                    warn!(%zone, error = %e.0, "transferred RPZ zone refused; its old rules stay");
                    return;
                }
            };
            if latest.load(Ordering::Relaxed) != seq {
                return;
            }
            let Some(handler) = handler.upgrade() else {
                return;
            };
            let count = rules.len();
            if handler.replace_rpz_rules(&zone, rules) {
                info!(%zone, rules = count, "RPZ rules replaced from the transfer");
            }
        });
    }
}
