//! The TLS in front of DNS over TLS (RFC 7858) and DNS over HTTPS
//! (RFC 8484): the certificate and key from `[server.tls]`, the rustls
//! server configuration per transport (its ALPN), and the handshake.
//!
//! The certificate sits behind [`Certificates`], which rustls asks for a
//! key at every handshake: a reload swaps it, so new handshakes use the
//! new certificate while connections already open keep theirs (Unbound
//! rereads its certificate only on restart). A certificate that does not
//! load on reload leaves the old one in place.
//!
//! TLS 1.2 and 1.3 with rustls's `ring` provider, the one hickory-proto
//! already builds for DNSSEC.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::transport::Transport;
use crate::config::TlsConfig;
use crate::metrics::Metrics;

/// ALPN of DNS over TLS (RFC 7858 §3.2, IANA "dot").
pub const ALPN_DOT: &[u8] = b"dot";
/// ALPN of DNS over HTTPS: HTTP/2 first, HTTP/1.1 for the rest
/// (RFC 8484 §5.2 recommends HTTP/2; curl and older stubs speak 1.1).
pub const ALPN_DOH: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the certificate or key cannot be used; each names the config key
/// and the file, for the operator to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} is empty, but a TLS or HTTPS listener is configured")]
    Missing { key: &'static str },
    #[error("{key}: cannot read {path}: {source}")]
    Unreadable {
        key: &'static str,
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{key}: {path} holds no PEM certificate")]
    NoCertificate { key: &'static str, path: String },
    #[error("{key}: {path} holds no usable private key: {reason}")]
    BadKey {
        key: &'static str,
        path: String,
        reason: String,
    },
}

/// A loaded certificate with what the operator wants to know about it.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// When the leaf certificate stops being valid.
    pub expires: Option<Expiry>,
}

/// Reads the PEM chain (leaf first) and private key `config` names, and
/// checks that they belong together.
pub fn load(config: &TlsConfig) -> Result<Loaded, TlsError> {
    const CERT: &str = "server.tls.certificate_file";
    const KEY: &str = "server.tls.key_file";
    if config.certificate_file.is_empty() {
        return Err(TlsError::Missing { key: CERT });
    }
    if config.key_file.is_empty() {
        return Err(TlsError::Missing { key: KEY });
    }
    let unreadable = |key, path: &str| {
        let path = path.to_string();
        move |source| TlsError::Unreadable { key, path, source }
    };
    let chain = CertificateDer::pem_file_iter(Path::new(&config.certificate_file))
        .map_err(unreadable(CERT, &config.certificate_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable(CERT, &config.certificate_file))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            key: CERT,
            path: config.certificate_file.clone(),
        });
    };
    let expires = Expiry::of(leaf);
    // PKCS #8, SEC1 or PKCS #1, whichever the file holds first.
    let key = PrivateKeyDer::from_pem_file(Path::new(&config.key_file)).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::BadKey {
            key: KEY,
            path: config.key_file.clone(),
            reason: "no PEM private key in it".into(),
        },
        source => TlsError::Unreadable {
            key: KEY,
            path: config.key_file.clone(),
            source,
        },
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::BadKey {
            key: KEY,
            path: config.key_file.clone(),
            reason: format!("{e} (does it belong to {}?)", config.certificate_file),
        })?;
    Ok(Loaded {
        key: Arc::new(certified),
        expires,
    })
}

/// rustls's `ring` provider. rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange (aws-lc-rs has it), but ring is what
/// hickory-proto and the forwarders' DoT client already build, and a
/// second C-heavy crypto library is not worth one key-exchange group here.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate every TLS listener presents; swapped on reload.
#[derive(Debug)]
pub struct Certificates {
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    pub fn new(loaded: &Loaded) -> Arc<Certificates> {
        Arc::new(Certificates {
            current: ArcSwap::new(loaded.key.clone()),
        })
    }

    /// New handshakes present `loaded` from now on.
    pub fn replace(&self, loaded: &Loaded) {
        self.current.store(loaded.key.clone());
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The TLS side of one listener: the rustls configuration with its
/// transport's ALPN.
#[derive(Clone)]
pub struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
    transport: Transport,
}

impl Acceptor {
    /// TLS 1.2 and 1.3 for `transport` (ALPN `dot`, or `h2` and
    /// `http/1.1`), presenting what `certificates` holds.
    pub fn new(certificates: Arc<Certificates>, transport: Transport) -> Acceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            // ring supports both versions; this cannot fail with it.
            .unwrap_or_else(|_| {
                rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap_or_else(|_| unreachable!("ring offers TLS 1.3"))
            })
            .with_no_client_auth()
            .with_cert_resolver(certificates);
        config.alpn_protocols = match transport {
            Transport::Https => ALPN_DOH.iter().map(|p| p.to_vec()).collect(),
            _ => vec![ALPN_DOT.to_vec()],
        };
        Acceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            transport,
        }
    }

    /// The handshake on an accepted connection, within `wait`; counted by
    /// outcome. A client that sends garbage or stops half-way costs only
    /// its own task and this wait.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        wait: Duration,
        metrics: &Metrics,
    ) -> Option<TlsStream<TcpStream>> {
        let result = tokio::time::timeout(wait, self.inner.accept(tcp)).await;
        let failure = match result {
            Ok(Ok(stream)) => {
                metrics.tls_handshake(self.transport, None);
                return Some(stream);
            }
            Ok(Err(e)) => failure_reason(&e),
            Err(_) => "timeout",
        };
        tracing::debug!(
            transport = self.transport.as_str(),
            reason = failure,
            "TLS handshake failed"
        );
        metrics.tls_handshake(self.transport, Some(failure));
        None
    }
}

/// The `reason` label of a failed handshake (a small fixed set).
pub const FAILURE_REASONS: [&str; 7] = [
    "timeout",
    "not_tls",
    "no_alpn",
    "incompatible",
    "alert",
    "closed",
    "other",
];

fn failure_reason(e: &std::io::Error) -> &'static str {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => "not_tls",
            rustls::Error::NoApplicationProtocol => "no_alpn",
            rustls::Error::PeerIncompatible(_) => "incompatible",
            rustls::Error::AlertReceived(_) => "alert",
            _ => "other",
        };
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => "closed",
        _ => "other",
    }
}

/// When a certificate stops being valid (its `notAfter`, RFC 5280 §4.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Seconds since the Unix epoch.
    pub unix: i64,
}

impl Expiry {
    /// The leaf's `notAfter`, read from its DER; `None` when it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Expiry> {
        not_after(cert.as_ref()).map(|unix| Expiry { unix })
    }

    /// Whole days from now until expiry (negative once it has expired).
    pub fn days_left(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        (self.unix - now).div_euclid(86_400)
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.unix.div_euclid(86_400);
        let secs = self.unix.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// One DER TLV: (tag, contents, the bytes after it).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| a << 8 | x as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `Certificate → tbsCertificate → validity → notAfter` (RFC 5280 §4.1).
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    let (_, _, rest) = tlv(rest)?; // serialNumber
    let (_, _, rest) = tlv(rest)?; // signature
    let (_, _, rest) = tlv(rest)?; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (_, _, validity) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(validity)?;
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            // UTCTime: YY < 50 is 20YY (RFC 5280 §4.1.2.5.1).
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                digits.get(2..)?,
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let days = days_from_civil(year, field(0)?, field(2)?);
    Some(days * 86_400 + field(4)? * 3600 + field(6)? * 60 + field(8)?)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_through_days() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2026, 12, 7), (2049, 12, 31)] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(days_from_civil(1970, 1, 2), 1);
        assert_eq!(
            Expiry {
                unix: 1_796_601_600
            }
            .to_string(),
            "2026-12-07 00:00:00 UTC"
        );
    }
}
