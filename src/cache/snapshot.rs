//! Warm restart: the first tier's live entries and the servers' RTTs in a
//! file, written on SIGTERM and every `cache.snapshot_interval_s`, read
//! back at start, so an upgrade or a reboot does not send every client's
//! next question to the root again.
//!
//! Unbound keeps its cache only across `unbound-control reload` (and by
//! hand with `dump_cache`/`load_cache`, text the admin pipes around);
//! here the daemon does it itself, and the file is refused as a whole
//! when it cannot be trusted:
//!
//! - it is written to a temporary file beside it, fsynced and renamed, so
//!   a crash mid-write leaves the previous snapshot, never half of one;
//! - it ends with a SHA-256 of everything before, so a truncated or
//!   damaged file is refused, never half-loaded;
//! - its header holds the Unix time it was made and a digest of the trust
//!   anchors and of whether validation was on: a clock that went backwards
//!   (the remaining TTLs cannot be trusted) or other anchors (what was
//!   Secure may not be) refuse it.
//!
//! Each entry is a [`super::portable`] value: it carries the Unix instant
//! its TTL runs out at, so the downtime is taken off every TTL on load and
//! what expired meanwhile is dropped.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! magic "TAPROOT-SNAPSHOT" | version u16 | created_unix_ms u64 | anchors [32]
//! | entries u32 | servers u32
//! | entries × (length u32, portable value)        hottest first
//! | servers × (family u8 = 4|6, address 4|16, srtt_ms f32, rttvar_ms f32)
//! | SHA-256 of all the above [32]
//! ```

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::CachedAnswer;
use super::portable;
use crate::wire;

/// The file's first bytes: `file` and a reader of the dump can tell it.
const MAGIC: &[u8; 16] = b"TAPROOT-SNAPSHOT";
/// The layout this module writes; the only one it reads.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 16 + 2 + 8 + 32 + 4 + 4;
const DIGEST_LEN: usize = 32;
/// An entry larger than this is damage, not data (a DNS message is at most
/// 64 KiB; the portable header is a few bytes).
const MAX_ENTRY: usize = 70_000;

/// Why a snapshot is not loaded (or not written).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a taproot cache snapshot")]
    NotASnapshot { path: String },
    #[error("{path} is snapshot version {found}; this taproot reads version {VERSION}")]
    UnknownVersion { path: String, found: u16 },
    #[error("{path} is truncated or damaged (its digest does not match)")]
    Damaged { path: String },
    #[error("{path} was made at a later time than now: the clock went backwards")]
    FromTheFuture { path: String },
    #[error("{path} was made under other trust anchors or validation settings")]
    OtherAnchors { path: String },
}

/// What a snapshot records of one upstream server: its smoothed RTT, so
/// the first questions after a restart go to the fastest servers at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerRtt {
    pub addr: IpAddr,
    pub srtt_ms: f32,
    pub rttvar_ms: f32,
}

/// A snapshot read back: the entries as portable values, hottest first.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub created_unix_ms: u64,
    pub entries: Vec<Vec<u8>>,
    pub servers: Vec<ServerRtt>,
}

/// The digest a snapshot is tied to: the trust anchors (each a record's
/// text form, sorted) and whether validation was on. An entry's DNSSEC
/// status means something only under the anchors that judged it.
pub fn anchors_digest(validating: bool, anchors: &[String]) -> [u8; 32] {
    let mut sorted: Vec<&String> = anchors.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    hash.update(if validating {
        "validate\n"
    } else {
        "no-validate\n"
    });
    for anchor in sorted {
        hash.update(anchor.to_ascii_lowercase().as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().into()
}

/// Writes a snapshot to `path` atomically (temp file, fsync, rename, and
/// the directory fsynced so the rename itself survives a crash).
pub fn write(
    path: &Path,
    created_unix_ms: u64,
    anchors: [u8; 32],
    entries: &[Vec<u8>],
    servers: &[ServerRtt],
) -> Result<(), SnapshotError> {
    let bytes = encode(created_unix_ms, anchors, entries, servers);
    let error = |source| SnapshotError::Write {
        path: path.display().to_string(),
        source,
    };
    let temp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(error)
}

/// `path` with `.tmp` appended: in the same directory, so the rename is
/// atomic (same filesystem).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The file's bytes (see the module doc for the layout).
pub fn encode(
    created_unix_ms: u64,
    anchors: [u8; 32],
    entries: &[Vec<u8>],
    servers: &[ServerRtt],
) -> Vec<u8> {
    let body: usize = entries.iter().map(|e| 4 + e.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + body + servers.len() * 25 + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&created_unix_ms.to_be_bytes());
    out.extend_from_slice(&anchors);
    let entries: Vec<&Vec<u8>> = entries.iter().filter(|e| e.len() <= MAX_ENTRY).collect();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&(servers.len() as u32).to_be_bytes());
    for entry in entries {
        out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        out.extend_from_slice(entry);
    }
    for server in servers {
        match server.addr {
            IpAddr::V4(v4) => {
                out.push(4);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.push(6);
                out.extend_from_slice(&v6.octets());
            }
        }
        out.extend_from_slice(&server.srtt_ms.to_be_bytes());
        out.extend_from_slice(&server.rttvar_ms.to_be_bytes());
    }
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    out
}

/// Reads the snapshot at `path`, refusing it as a whole when it is not
/// one, is damaged, was made in the future of `now_unix_ms`, or under
/// other `anchors`.
pub fn read(path: &Path, now_unix_ms: u64, anchors: [u8; 32]) -> Result<Snapshot, SnapshotError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SnapshotError::Read {
        path: shown.clone(),
        source,
    })?;
    decode(&bytes, &shown, now_unix_ms, anchors)
}

/// Parses a snapshot's bytes; `path` names it in errors.
pub fn decode(
    bytes: &[u8],
    path: &str,
    now_unix_ms: u64,
    anchors: [u8; 32],
) -> Result<Snapshot, SnapshotError> {
    let path = path.to_string();
    if bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err(SnapshotError::NotASnapshot { path });
    }
    let mut r = Reader {
        bytes,
        at: MAGIC.len(),
    };
    let damaged = || SnapshotError::Damaged { path: path.clone() };
    let version = r.u16().ok_or_else(damaged)?;
    if version != VERSION {
        return Err(SnapshotError::UnknownVersion {
            path,
            found: version,
        });
    }
    let body_len = bytes.len().checked_sub(DIGEST_LEN).ok_or_else(damaged)?;
    let (body, digest) = bytes.split_at(body_len);
    if body.len() < HEADER_LEN || Sha256::digest(body).as_slice() != digest {
        return Err(damaged());
    }
    r.bytes = body;
    let created_unix_ms = r.u64().ok_or_else(damaged)?;
    let tied_to = r.take(32).ok_or_else(damaged)?;
    if created_unix_ms > now_unix_ms {
        return Err(SnapshotError::FromTheFuture { path });
    }
    if tied_to != anchors {
        return Err(SnapshotError::OtherAnchors { path });
    }
    let entry_count = r.u32().ok_or_else(damaged)? as usize;
    let server_count = r.u32().ok_or_else(damaged)? as usize;
    // Counts come from the file: bound the reservation by what the body
    // can hold, so a lying count cannot ask for gigabytes.
    let mut entries = Vec::with_capacity(entry_count.min(body.len() / 4));
    for _ in 0..entry_count {
        let len = r.u32().ok_or_else(damaged)? as usize;
        if len > MAX_ENTRY {
            return Err(damaged());
        }
        entries.push(r.take(len).ok_or_else(damaged)?.to_vec());
    }
    let mut servers = Vec::with_capacity(server_count.min(body.len() / 13));
    for _ in 0..server_count {
        let addr = match r.u8().ok_or_else(damaged)? {
            4 => {
                let o: [u8; 4] = r
                    .take(4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(damaged)?;
                IpAddr::from(o)
            }
            6 => {
                let o: [u8; 16] = r
                    .take(16)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(damaged)?;
                IpAddr::from(o)
            }
            _ => return Err(damaged()),
        };
        let srtt_ms = f32::from_bits(r.u32().ok_or_else(damaged)?);
        let rttvar_ms = f32::from_bits(r.u32().ok_or_else(damaged)?);
        servers.push(ServerRtt {
            addr,
            srtt_ms,
            rttvar_ms,
        });
    }
    if r.at != body.len() {
        return Err(damaged());
    }
    Ok(Snapshot {
        created_unix_ms,
        entries,
        servers,
    })
}

/// What a snapshot load did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Entries put into the cache.
    pub loaded: usize,
    /// Entries that ran out during the downtime.
    pub expired: usize,
    /// Entries that did not decode (counted, never fatal).
    pub unreadable: usize,
    /// Entries the cache already held (answered since the start).
    pub present: usize,
}

impl super::Cache {
    /// The first tier's fresh entries as [`portable`] values, the ones hit
    /// since the eviction hand last passed first: a cache bigger than what
    /// the file gets to hold again keeps what clients ask for.
    pub fn snapshot_entries(&self, now: portable::Now) -> Vec<Vec<u8>> {
        let (mut hot, mut rest) = (Vec::new(), Vec::new());
        self.store.for_each(|entry| {
            if !entry.is_fresh(now.monotonic_ms) {
                return;
            }
            if let Ok(bytes) = portable::encode(entry, entry.variant(), now) {
                if entry.recently_hit() {
                    hot.push(bytes);
                } else {
                    rest.push(bytes);
                }
            }
        });
        hot.append(&mut rest);
        hot
    }

    /// Puts a snapshot's entries into the first tier with their TTLs
    /// lowered by the time since it was written, leaving alone any
    /// question answered since the start (its entry is newer).
    pub fn restore_entries(&self, entries: &[Vec<u8>], now: portable::Now) -> Restored {
        let mut done = Restored::default();
        let mut key = [0u8; wire::KEY_MAX];
        for bytes in entries {
            let entry = match portable::decode(bytes, now) {
                Ok(entry) => entry,
                Err(portable::PortableError::Expired) => {
                    done.expired += 1;
                    continue;
                }
                Err(_) => {
                    done.unreadable += 1;
                    continue;
                }
            };
            let Some(key) = key_of(&entry, &mut key) else {
                done.unreadable += 1;
                continue;
            };
            if self.store.get(self.store.fingerprint(key), key).is_some() {
                done.present += 1;
                continue;
            }
            self.adopt(key, entry);
            done.loaded += 1;
        }
        done
    }
}

/// The key an entry is stored under: its question and its variant.
fn key_of<'k>(entry: &CachedAnswer, out: &'k mut [u8; wire::KEY_MAX]) -> Option<&'k [u8]> {
    let qname = entry.qname();
    let at = wire::HEADER_LEN + qname.len();
    let qtype = wire::read_u16(entry.head(), at)?;
    let qclass = wire::read_u16(entry.head(), at + 2)?;
    Some(wire::answer_key(qname, qtype, qclass, entry.variant(), out))
}

/// A cursor over bytes that were checked by digest but not by shape.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(u64::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn anchors() -> [u8; 32] {
        anchors_digest(true, &[". 3600 IN DS 20326 8 2 E06D44B8".to_string()])
    }

    fn sample() -> Vec<u8> {
        let entries = vec![b"first".to_vec(), vec![7u8; 300], Vec::new()];
        let servers = vec![
            ServerRtt {
                addr: "127.0.0.1".parse().unwrap(),
                srtt_ms: 12.5,
                rttvar_ms: 3.0,
            },
            ServerRtt {
                addr: "::1".parse().unwrap(),
                srtt_ms: 40.0,
                rttvar_ms: 9.25,
            },
        ];
        encode(NOW - 60_000, anchors(), &entries, &servers)
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        let s = decode(&sample(), "snap", NOW, anchors()).unwrap();
        assert_eq!(s.created_unix_ms, NOW - 60_000);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries[0], b"first");
        assert_eq!(s.entries[1], vec![7u8; 300]);
        assert!(s.entries[2].is_empty());
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.servers[1].rttvar_ms, 9.25);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], "snap", NOW, anchors()).is_err(),
                "{len}"
            );
        }
        for i in 0..bytes.len() {
            let mut spoiled = bytes.clone();
            spoiled[i] ^= 0x40;
            assert!(
                decode(&spoiled, "snap", NOW, anchors()).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_clock_that_went_backwards_refuses_the_file() {
        let err = decode(&sample(), "snap", NOW - 120_000, anchors()).unwrap_err();
        assert!(matches!(err, SnapshotError::FromTheFuture { .. }), "{err}");
    }

    #[test]
    fn other_anchors_or_validation_off_refuse_the_file() {
        let other = anchors_digest(true, &[". 3600 IN DS 38696 8 2 683D2D0A".to_string()]);
        let err = decode(&sample(), "snap", NOW, other).unwrap_err();
        assert!(matches!(err, SnapshotError::OtherAnchors { .. }), "{err}");
        let off = anchors_digest(false, &[". 3600 IN DS 20326 8 2 E06D44B8".to_string()]);
        assert!(decode(&sample(), "snap", NOW, off).is_err());
    }

    #[test]
    fn anything_else_is_not_a_snapshot() {
        let err = decode(b"hello, world", "x", NOW, anchors()).unwrap_err();
        assert!(matches!(err, SnapshotError::NotASnapshot { .. }), "{err}");
    }

    #[test]
    fn writing_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("taproot-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.snapshot");
        std::fs::write(&path, b"old").unwrap();
        write(&path, NOW - 1000, anchors(), &[b"x".to_vec()], &[]).unwrap();
        let s = read(&path, NOW, anchors()).unwrap();
        assert_eq!(s.entries, vec![b"x".to_vec()]);
        assert!(!temp_path(&path).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
