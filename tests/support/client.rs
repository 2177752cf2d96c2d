//! The three-level fake tree (root → kr. → co.kr. → example.co.kr.) and a
//! tiny stub client to question servers (fake ones or taproot) directly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::tree::FakeTree;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long the client waits for any reply.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);

pub const ROOT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10));
pub const KR1_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));
pub const KR2_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 12));
pub const COKR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 13));
pub const EXAMPLE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 14));

pub const ROOT_ZONE: &str = r#"
$TTL 86400
@                    IN SOA a.root-servers.fake. hostmaster.root-servers.fake. 1 1800 900 604800 86400
@                    IN NS  a.root-servers.fake.
a.root-servers.fake. IN A   127.0.0.10
kr.          172800  IN NS  ns1.kr.
kr.          172800  IN NS  ns2.kr.
ns1.kr.      172800  IN A   127.0.0.11
ns2.kr.      172800  IN A   127.0.0.12
"#;

pub const KR_ZONE: &str = r#"
$TTL 3600
@       IN SOA ns1.kr. hostmaster.kr. 1 1800 900 604800 600
@       IN NS  ns1
@       IN NS  ns2
ns1     IN A   127.0.0.11
ns2     IN A   127.0.0.12
co      IN NS  ns.co
ns.co   IN A   127.0.0.13
"#;

pub const COKR_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns hostmaster 1 1800 900 604800 600
@            IN NS  ns
ns           IN A   127.0.0.13
example      IN NS  ns1.example
ns1.example  IN A   127.0.0.14
"#;

/// SOA TTL 3600, MINIMUM 300: negative answers carry TTL 300.
pub const EXAMPLE_ZONE: &str = r#"
$TTL 3600
@         IN SOA ns1 hostmaster 2024010101 3600 600 86400 300
@         IN NS  ns1
ns1       IN A   127.0.0.14
www       IN A   127.1.0.1
www       IN A   127.1.0.2
alias     IN CNAME www
chain     IN CNAME alias
outside   IN CNAME www.example.test.
loop1     IN CNAME loop2
loop2     IN CNAME loop1
*.wild    IN A   127.1.0.9
a.b.ent   IN A   127.1.0.5
old   600 IN DNAME new
x.new     IN A   127.1.0.7
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 one"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 two"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 three"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 four"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 five"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 six"
big       IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 seven"
"#;

/// A query with RD=1, as a stub resolver (glibc, `dig`) sends it.
pub fn recursive(qname: &str, rtype: RecordType) -> Message {
    let mut m = query(qname, rtype);
    m.metadata.recursion_desired = true;
    m
}

/// Every A and AAAA address in the answer section, sorted.
pub fn addresses(reply: &Message) -> Vec<String> {
    let mut out: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// The first A record's address in the answer section, if any.
pub fn first_a(reply: &Message) -> Option<String> {
    reply.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

/// Starts the three-level tree.
pub async fn three_level_tree() -> FakeTree {
    FakeTree::builder()
        .zone(".", ROOT_ZONE, &[ROOT_IP])
        .zone("kr.", KR_ZONE, &[KR1_IP, KR2_IP])
        .zone("co.kr.", COKR_ZONE, &[COKR_IP])
        .zone("example.co.kr.", EXAMPLE_ZONE, &[EXAMPLE_IP])
        .start()
        .await
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test names are valid")
}

/// An iterative query (RD=0) with EDNS advertising 1232 octets.
pub fn query(qname: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(name(qname), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    message
}

/// The same without EDNS.
pub fn plain_query(qname: &str, rtype: RecordType) -> Message {
    let mut message = query(qname, rtype);
    message.edns = None;
    message
}

/// Sends raw bytes over UDP and returns the raw reply, if one comes within `wait`.
pub async fn exchange_udp_raw(to: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let local = if to.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = UdpSocket::bind(local).await.expect("bind a client socket");
    socket.send_to(bytes, to).await.expect("send a query");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

/// Asks over UDP; `None` if nothing came back in time.
pub async fn ask_udp_within(to: SocketAddr, message: &Message, wait: Duration) -> Option<Message> {
    let bytes = message.to_vec().expect("encode the query");
    let reply = exchange_udp_raw(to, &bytes, wait).await?;
    Some(Message::from_vec(&reply).expect("the fake server's reply decodes"))
}

/// Asks over UDP and insists on a reply.
pub async fn ask_udp(to: SocketAddr, message: &Message) -> Message {
    ask_udp_within(to, message, REPLY_WAIT)
        .await
        .unwrap_or_else(|| panic!("no UDP reply from {to} within {REPLY_WAIT:?}"))
}

/// Asks several questions over one TCP connection and returns the replies.
pub async fn ask_tcp_many(to: SocketAddr, messages: &[Message]) -> Vec<Message> {
    tokio::time::timeout(REPLY_WAIT, async {
        let mut stream = TcpStream::connect(to).await.expect("connect over TCP");
        let mut replies = Vec::new();
        for message in messages {
            let bytes = message.to_vec().expect("encode the query");
            let len = u16::try_from(bytes.len()).expect("query fits TCP");
            stream
                .write_all(&len.to_be_bytes())
                .await
                .expect("write length");
            stream.write_all(&bytes).await.expect("write query");
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.expect("read length");
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut reply).await.expect("read reply");
            replies.push(Message::from_vec(&reply).expect("the fake server's reply decodes"));
        }
        replies
    })
    .await
    .unwrap_or_else(|_| panic!("no TCP reply from {to} within {REPLY_WAIT:?}"))
}

/// Asks one question over TCP.
pub async fn ask_tcp(to: SocketAddr, message: &Message) -> Message {
    ask_tcp_many(to, std::slice::from_ref(message))
        .await
        .pop()
        .expect("one reply")
}

/// The EDE INFO-CODE of a response, if it carries one (RFC 8914 §2).
pub fn ede_code(reply: &Message) -> Option<u16> {
    let edns = reply.edns.as_ref()?;
    edns.options().as_ref().iter().find_map(|(code, opt)| {
        if u16::from(*code) != 15 {
            return None;
        }
        match opt {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data) if data.len() >= 2 => {
                Some(u16::from_be_bytes([data[0], data[1]]))
            }
            _ => None,
        }
    })
}
