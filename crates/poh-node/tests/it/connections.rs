//! Connection slots: a few clients holding idle connections cannot lock others out (slots per
//! client are a fraction of the total), and idle connections are closed.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

use crate::common;

/// The HTTP/2 connection preface and an empty SETTINGS frame: what an idle HTTP/2 client sends.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

async fn connect_from(ip: &str, to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{ip}:0").parse().unwrap())?;
    socket.connect(to).await
}

/// Four client addresses open 256 idle HTTP/2 connections each, as many as the listener
/// serves; a fifth client is still served, because each of the four holds only its share.
#[tokio::test]
async fn four_clients_of_idle_connections_do_not_lock_out_a_fifth() {
    let node = common::start().await;
    let addr = node.node.http_addr().unwrap();
    let mut held = Vec::new();
    for client in 2..6 {
        for _ in 0..256 {
            let mut stream = connect_from(&format!("127.0.0.{client}"), addr)
                .await
                .unwrap();
            // A connection closed at accept may refuse the preface; it holds nothing then.
            let _ = stream.write_all(H2_PREFACE).await;
            held.push(stream);
        }
    }
    let fifth = reqwest::Client::builder()
        .local_address("127.0.0.6".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = fifth
        .get(node.http("/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    drop(held);
    node.stop().await;
}

/// A connection with nothing in flight for the idle timeout is closed by the node.
#[tokio::test]
async fn idle_connections_are_closed() {
    let node = common::start_with(|c| {
        if let Some(http) = c.http.as_mut() {
            http.idle_timeout_secs = 1;
        }
    })
    .await;
    let mut stream = TcpStream::connect(node.node.http_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive, then idle: the node closes it after about a second.
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    node.stop().await;
}
