//! The test tree itself is trustworthy: asked by a real client (`dig
//! +norecurse`), each fake server answers as an authoritative server would —
//! a referral with glue at every level down, the answer with AA at the
//! bottom, NXDOMAIN with the SOA. Every other test stands on this.

mod support;

use std::net::SocketAddr;

use support::client::{COKR_IP, EXAMPLE_IP, KR1_IP, KR2_IP, ROOT_IP, three_level_tree};
use support::e2e::{DigReply, dig, off_thread};

fn glue(reply: &DigReply) -> Vec<String> {
    let mut v: Vec<String> = reply
        .additional
        .iter()
        .filter(|r| r.rtype == "A")
        .map(|r| r.data.clone())
        .collect();
    v.sort();
    v
}

fn ns(reply: &DigReply) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = reply
        .authority
        .iter()
        .filter(|r| r.rtype == "NS")
        .map(|r| (r.name.clone(), r.data.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_answers_dig_norecurse_with_a_referral_and_glue() {
    let tree = three_level_tree().await;
    let at = |ip| SocketAddr::new(ip, tree.port());
    let (root, kr, cokr, example) = (at(ROOT_IP), at(KR1_IP), at(COKR_IP), at(EXAMPLE_IP));
    off_thread(move || {
        let q = ["+norecurse", "www.example.co.kr", "A"];

        let r = dig(root, &q);
        assert_eq!(r.status, "NOERROR", "{}", r.text);
        assert!(r.answer.is_empty() && !r.has_flag("aa"), "{}", r.text);
        assert_eq!(
            ns(&r),
            [
                ("kr.".to_string(), "ns1.kr.".to_string()),
                ("kr.".to_string(), "ns2.kr.".to_string())
            ]
        );
        assert_eq!(glue(&r), [KR1_IP.to_string(), KR2_IP.to_string()]);

        let r = dig(kr, &q);
        assert_eq!(ns(&r), [("co.kr.".to_string(), "ns.co.kr.".to_string())]);
        assert_eq!(glue(&r), [COKR_IP.to_string()]);

        let r = dig(cokr, &q);
        assert_eq!(
            ns(&r),
            [(
                "example.co.kr.".to_string(),
                "ns1.example.co.kr.".to_string()
            )]
        );
        assert_eq!(glue(&r), [EXAMPLE_IP.to_string()]);

        let r = dig(example, &q);
        assert!(r.has_flag("aa"), "{}", r.text);
        assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"]);

        let nx = dig(example, &["+norecurse", "nope.example.co.kr", "A"]);
        assert_eq!(nx.status, "NXDOMAIN");
        assert!(nx.has_flag("aa"));
        assert_eq!(nx.authority[0].rtype, "SOA", "{}", nx.text);
    })
    .await;
    tree.shutdown().await;
}
