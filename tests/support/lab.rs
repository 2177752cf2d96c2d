//! A richer fake tree for the walk and cache tests, on 127.0.2.0/24:
//!
//! ```text
//! .            127.0.2.1
//! ├─ kr.       127.0.2.2
//! │  ├─ co.kr.            127.0.2.4
//! │  │  └─ example.co.kr. 127.0.2.6, .7, .8   (three servers: knobs per server)
//! │  │     └─ sub.example.co.kr. 127.0.2.9    (a fourth cut)
//! │  └─ glueless.kr.      NS ns.provider.lab. (no glue: resolved separately)
//! └─ lab.      127.0.2.3
//!    └─ provider.lab.     127.0.2.5 (also serves glueless.kr.)
//! ```

use std::net::{IpAddr, Ipv4Addr};

use super::tree::FakeTree;

pub const ROOT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1));
pub const KR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 2));
pub const LAB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 3));
pub const COKR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 4));
pub const PROVIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 5));
pub const EX1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 6));
pub const EX2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 7));
pub const EX3: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 8));
pub const SUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 9));

pub const ROOT_ZONE: &str = r#"
$TTL 86400
@                IN SOA a.root.lab. hostmaster.root.lab. 1 1800 900 604800 86400
@                IN NS  a.root.lab.
a.root.lab.      IN A   127.0.2.1
kr.      172800  IN NS  ns.kr.
ns.kr.   172800  IN A   127.0.2.2
lab.     172800  IN NS  ns.lab.
ns.lab.  172800  IN A   127.0.2.3
"#;

pub const KR_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns.kr. hostmaster.kr. 1 1800 900 604800 600
@            IN NS  ns
ns           IN A   127.0.2.2
co           IN NS  ns.co
ns.co        IN A   127.0.2.4
glueless     IN NS  ns.provider.lab.
"#;

pub const LAB_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns.lab. hostmaster.lab. 1 1800 900 604800 600
@            IN NS  ns
ns           IN A   127.0.2.3
provider     IN NS  ns.provider
ns.provider  IN A   127.0.2.5
"#;

pub const PROVIDER_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns hostmaster 1 1800 900 604800 300
@            IN NS  ns
@            IN MX  10 mail
ns           IN A   127.0.2.5
mail         IN A   127.3.0.25
www          IN A   127.3.0.1
www          IN AAAA fd00::1
www          IN TXT "v=lab1 hello"
short    2   IN A   127.3.0.2
ten     10   IN A   127.3.0.10
"#;

pub const GLUELESS_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns.provider.lab. hostmaster.provider.lab. 1 1800 900 604800 300
@            IN NS  ns.provider.lab.
www          IN A   127.4.0.1
"#;

pub const COKR_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns hostmaster 1 1800 900 604800 600
@            IN NS  ns
ns           IN A   127.0.2.4
example      IN NS  ns1.example
example      IN NS  ns2.example
example      IN NS  ns3.example
ns1.example  IN A   127.0.2.6
ns2.example  IN A   127.0.2.7
ns3.example  IN A   127.0.2.8
"#;

/// SOA MINIMUM 300: negative answers carry TTL 300.
pub const EXAMPLE_ZONE: &str = r#"
$TTL 3600
@          IN SOA ns1 hostmaster 2024010101 3600 600 86400 300
@          IN NS  ns1
@          IN NS  ns2
@          IN NS  ns3
ns1        IN A   127.0.2.6
ns2        IN A   127.0.2.7
ns3        IN A   127.0.2.8
www        IN A   127.5.0.1
alias      IN CNAME www
out        IN CNAME www.provider.lab.
loop1      IN CNAME loop2
loop2      IN CNAME loop1
*.wild     IN A   127.5.0.9
old    600 IN DNAME new
x.new      IN A   127.5.0.7
sub        IN NS  ns.sub
ns.sub     IN A   127.0.2.9
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 one"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 two"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 three"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 four"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 five"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 six"
big        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 seven"
mid        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 one"
mid        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 two"
mid        IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 three"
"#;

pub const SUB_ZONE: &str = r#"
$TTL 3600
@          IN SOA ns hostmaster 1 3600 600 86400 300
@          IN NS  ns
ns         IN A   127.0.2.9
host       IN A   127.6.0.1
"#;

/// Starts the lab tree.
pub async fn lab_tree() -> FakeTree {
    FakeTree::builder()
        .zone(".", ROOT_ZONE, &[ROOT])
        .zone("kr.", KR_ZONE, &[KR])
        .zone("lab.", LAB_ZONE, &[LAB])
        .zone("provider.lab.", PROVIDER_ZONE, &[PROVIDER])
        .zone("glueless.kr.", GLUELESS_ZONE, &[PROVIDER])
        .zone("co.kr.", COKR_ZONE, &[COKR])
        .zone("example.co.kr.", EXAMPLE_ZONE, &[EX1, EX2, EX3])
        .zone("sub.example.co.kr.", SUB_ZONE, &[SUB])
        .start()
        .await
}
