//! The address rules of SPEC §5: `host:port` for gRPC, UDP and QUIC (host: IPv4, `[IPv6]` or a
//! DNS name; port 1–65535) and `http://` or `https://` URLs for HTTP. Each check returns the
//! reason an address is refused, which [`super::PeersError`] shows the user.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest `host:port` address: a 253-byte DNS name, a colon and five digits.
const MAX_HOST_PORT_LEN: usize = 253 + 6;
/// The longest HTTP peer URL.
pub(super) const MAX_URL_LEN: usize = 2048;

const HOST_PORT: &str = "expected host:port with a port from 1 to 65535";

/// `host:port` for gRPC, UDP and QUIC; the error is the reason, for [`PeersError`].
pub(super) fn check_host_port(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("the address is empty; {HOST_PORT}"));
    }
    if s.len() > MAX_HOST_PORT_LEN {
        return Err(format!(
            "the address is longer than {MAX_HOST_PORT_LEN} bytes; {HOST_PORT}"
        ));
    }
    check_chars(s)?;
    if s.contains("://") {
        return Err(format!(
            "{HOST_PORT}, without a scheme (only http peers are URLs)"
        ));
    }
    match split_authority(s)? {
        (host, Some(port)) => {
            check_host(host)?;
            check_port(port)
        }
        (_, None) => Err(format!("missing :port; {HOST_PORT}")),
    }
}

/// An `http://` or `https://` URL with a host, an optional port and an optional path.
pub(super) fn check_url(s: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected an http:// or https:// URL, e.g. http://127.0.0.1:8080";
    if s.is_empty() {
        return Err(format!("the address is empty; {EXPECTED}"));
    }
    if s.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    check_chars(s)?;
    let scheme_len = ["http://", "https://"]
        .into_iter()
        .find(|scheme| {
            s.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        })
        .map(str::len);
    let Some(scheme_len) = scheme_len else {
        return Err(match s.split_once("://") {
            Some((scheme, _)) => format!("the scheme {scheme:?} is not supported; {EXPECTED}"),
            None => EXPECTED.to_owned(),
        });
    };
    let rest = &s[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(format!("the URL has no host; {EXPECTED}"));
    }
    if authority.contains('@') {
        return Err("a peer URL cannot hold credentials (user@host)".to_owned());
    }
    if path.contains(['?', '#']) {
        return Err("a peer URL takes no query or fragment, only a path".to_owned());
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err("the URL path must be printable ASCII (percent-encode the rest)".to_owned());
    }
    let (host, port) = split_authority(authority)?;
    check_host(host)?;
    port.map_or(Ok(()), check_port)
}

fn check_chars(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the address contains spaces or control characters".to_owned());
    }
    Ok(())
}

/// Splits `host[:port]`, where the host may be a bracketed IPv6 address.
fn split_authority(s: &str) -> Result<(&str, Option<&str>), String> {
    if s.starts_with('[') {
        let Some(close) = s.find(']') else {
            return Err(format!("{s:?} has no closing ']' after the IPv6 address"));
        };
        let (host, rest) = s.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {rest:?} after the IPv6 address {host}")),
        };
    }
    match s.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 host must be in brackets, e.g. [::1]:9000 or http://[::1]:8080".to_owned())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((s, None)),
    }
}

fn check_port(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("missing port after ':'; expected a port from 1 to 65535".to_owned());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port {port:?} is not a number from 1 to 65535 (digits only)"
        ));
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(format!(
            "port {port:?} has a leading zero; write it as a number from 1 to 65535"
        ));
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(format!(
            "port {port} is out of range; expected a port from 1 to 65535"
        )),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("the host is empty; {HOST_PORT}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host} is not a valid IPv6 address")),
        };
    }
    // Digits and dots can only mean IPv4: `999.1.1.1` is a bad address, not a DNS name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "host {host:?} is not a valid IPv4 address (four numbers 0–255, no leading zeros)"
            )),
        };
    }
    check_dns_name(host).map_err(|why| format!("host {host:?} is not a valid DNS name: {why}"))
}

/// RFC 1123 host names, and (RFC 3696 §2) a last label that is not all digits, which URL
/// parsers would take for an IPv4 address.
fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("it is longer than 253 characters".to_owned());
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots, or a dot at an end)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("the label {label:?} is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "the label {label:?} has a character other than letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with a hyphen"));
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("its last label is all digits".to_owned());
    }
    Ok(())
}
