//! Client access control: CIDR rules, the most specific prefix wins.
//! A client no rule matches is refused, so taproot is never an open
//! resolver by accident.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{AclAction, AclRule};

/// Rules sorted most specific first.
#[derive(Debug, Clone)]
pub struct Acl {
    rules: Vec<(IpNet, AclAction)>,
}

impl Acl {
    pub fn new(rules: &[AclRule]) -> Acl {
        let mut rules: Vec<(IpNet, AclAction)> =
            rules.iter().map(|r| (r.prefix.trunc(), r.action)).collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.prefix_len()));
        Acl { rules }
    }

    /// The action for a client; IPv4-mapped IPv6 addresses match IPv4 rules.
    #[inline]
    pub fn check(&self, ip: IpAddr) -> AclAction {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.rules
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map_or(AclAction::Refuse, |(_, a)| *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_prefix_wins() {
        let acl = Acl::new(&[
            AclRule {
                prefix: "127.0.0.0/8".parse().unwrap(),
                action: AclAction::Allow,
            },
            AclRule {
                prefix: "127.0.0.2/32".parse().unwrap(),
                action: AclAction::Refuse,
            },
        ]);
        assert_eq!(acl.check("127.0.0.1".parse().unwrap()), AclAction::Allow);
        assert_eq!(acl.check("127.0.0.2".parse().unwrap()), AclAction::Refuse);
        assert_eq!(acl.check("8.8.8.8".parse().unwrap()), AclAction::Refuse);
        assert_eq!(
            acl.check("::ffff:127.0.0.1".parse().unwrap()),
            AclAction::Allow
        );
    }
}
