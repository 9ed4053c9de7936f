//! A client is its IPv6 network, not its address: datagrams from two addresses of one /64
//! reach a node on `[::1]` and spend one rate budget at the door, while an address of the next
//! /64 is served from a budget of its own.
//!
//! Only `::1` is configured on loopback, and adding addresses needs root, so the second and
//! third senders bind their source with `IPV6_FREEBIND` (no privilege needed): their
//! datagrams really arrive from those addresses. UDP needs no answer, so that is enough.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket},
    time::{Duration, Instant},
};

use poh_node::config::ClientLimits;

use crate::common::{self, TestNode, json, series_value, tx};

/// Datagrams one client may send at once; the rate refills one a second.
const BURST: u32 = 20;

const RECEIVED: &str = "poh_tx_received_total{transport=\"udp\"}";
const REFUSED: &str = "poh_tx_rejected_total{transport=\"udp\",reason=\"overloaded\"}";

/// A UDP socket sending from `ip`, which need not be configured on any interface.
fn udp_from(ip: Ipv6Addr) -> std::io::Result<UdpSocket> {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::{AddressFamily, SocketType, bind, socket, sockopt};
        let fd = socket(AddressFamily::INET6, SocketType::DGRAM, None)?;
        sockopt::set_ipv6_freebind(&fd, true)?;
        bind(&fd, &SocketAddrV6::new(ip, 0, 0, 0))?;
        Ok(UdpSocket::from(fd))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = ip;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "IPV6_FREEBIND is Linux only",
        ))
    }
}

/// Sends `BURST` transactions from `socket` to the node's UDP port.
fn send_burst(socket: &UdpSocket, node: &TestNode, name: &str) {
    let target = node.node.udp_addr().unwrap();
    for i in 0..BURST {
        let body = serde_json::to_vec(&json(&tx(&format!("{name}-{i}")))).unwrap();
        socket.send_to(&body, target).unwrap();
    }
}

/// Datagrams the node took, and refused as over the client's rate, once it has handled
/// `total` of them (read in-process: a `/metrics` request would spend budget too).
async fn handled(node: &TestNode, total: f64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = node.node.metrics().render();
        let received = series_value(&text, RECEIVED).unwrap_or(0.0);
        let refused = series_value(&text, REFUSED).unwrap_or(0.0);
        if received + refused >= total {
            return (received, refused);
        }
        assert!(
            Instant::now() < deadline,
            "handled {received} + {refused} of {total} datagrams in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start_on(bind: &str) -> TestNode {
    common::start_with(|c| {
        c.bind = bind.parse().unwrap();
        c.limits = ClientLimits {
            requests_per_second: 1,
            burst: BURST,
            ..ClientLimits::default()
        };
    })
    .await
}

#[tokio::test]
async fn two_ipv6_addresses_of_one_64_share_one_budget_at_the_door() {
    assert_eq!(ClientLimits::default().ipv6_prefix_len, 64);
    let Ok(first) = UdpSocket::bind("[::1]:0") else {
        eprintln!(
            "NOT TESTED: this machine has no IPv6 loopback (::1), so IPv6 clients cannot be \
             tested here; testing only that IPv4 addresses keep a budget each"
        );
        return ipv4_addresses_keep_a_budget_each().await;
    };
    let node = start_on("::1").await;
    assert!(matches!(node.node.udp_addr(), Some(SocketAddr::V6(_))));
    let started = Instant::now();

    send_burst(&first, &node, "first");
    assert_eq!(handled(&node, f64::from(BURST)).await, (20.0, 0.0));

    let same_64: Ipv6Addr = "::abcd:2".parse().unwrap();
    let second = match udp_from(same_64) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!(
                "NOT TESTED: cannot send from a second address of ::/64 ({e}); only that one \
                 IPv6 address is refused beyond its burst"
            );
            send_burst(&first, &node, "first-again");
            let (_, refused) = handled(&node, f64::from(2 * BURST)).await;
            assert!(refused > 0.0, "nothing refused beyond the burst");
            return node.stop().await;
        }
    };
    send_burst(&second, &node, "second");
    let (received, refused) = handled(&node, f64::from(2 * BURST)).await;
    // The burst is spent and refills one a second: the second address of the /64 gets at most
    // what refilled, where a budget of its own would have taken all twenty.
    let refilled = started.elapsed().as_secs() as f64 + 1.0;
    assert!(
        refused > 0.0 && refused >= f64::from(BURST) - refilled,
        "::abcd:2 shares ::1's /64 and its spent burst: took {}, refused {refused} \
         ({refilled} refilled)",
        received - 20.0,
    );

    let next_64: Ipv6Addr = "0:0:0:1::1".parse().unwrap();
    let third = udp_from(next_64).unwrap();
    send_burst(&third, &node, "third");
    let (received_then, refused_then) = handled(&node, f64::from(3 * BURST)).await;
    assert_eq!(
        (received_then - received, refused_then),
        (20.0, refused),
        "0:0:0:1::1 is in another /64, with a budget of its own"
    );
    node.stop().await;
}

/// What can be tested without IPv6: two loopback IPv4 addresses are two clients.
async fn ipv4_addresses_keep_a_budget_each() {
    let node = start_on("127.0.0.1").await;
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_burst(&first, &node, "first");
    send_burst(&first, &node, "first-again");
    let (_, refused) = handled(&node, f64::from(2 * BURST)).await;
    assert!(refused > 0.0, "nothing refused beyond the burst");
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    send_burst(&other, &node, "other");
    let (received, refused_then) = handled(&node, f64::from(3 * BURST)).await;
    assert_eq!(refused_then, refused, "127.0.0.2 has a budget of its own");
    assert!(received >= 40.0, "{received}");
    node.stop().await;
}
