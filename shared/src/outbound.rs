//! Where the service connects on a client's word: the video URLs workers read and the
//! callback URLs they POST events to. A client must not be able to point a worker at the
//! instance's own metadata service, or at anything inside the private network it runs
//! in (server-side request forgery).
//!
//! Refused always: unspecified, link-local (169.254.0.0/16, where EC2 and ECS serve
//! credentials; fe80::/10), multicast and broadcast addresses, and EC2's IPv6 metadata
//! address fd00:ec2::254, also when written as IPv4-mapped IPv6. Refused unless
//! `FANOUT_PRIVATE_URLS=allow` (set by the local stack, where videos and callbacks
//! live on this machine): loopback, private (10/8, 172.16/12, 192.168/16), shared
//! (100.64/10) and unique-local (fc00::/7) addresses.
//!
//! Hosts are checked on every address they resolve to, by the worker, right before it
//! connects. Callbacks and the copy of a video task's URL go through [`client`], which
//! connects only to the addresses checked ([`Guarded`]) and follows no redirect. A
//! stream's URL is read by ffmpeg, which resolves the host again itself, so a name that
//! changes its answer between the two lookups (DNS rebinding) is not caught there;
//! ffmpeg follows no redirect (`-max_redirects 0`) and reads a video file with the file
//! demuxers only, never a playlist whose entries point elsewhere (`video::media`; a
//! stream's live URL may be a playlist).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

/// The variable that lets URLs reach private addresses.
pub const PRIVATE_VARIABLE: &str = "FANOUT_PRIVATE_URLS";

/// Whether private addresses may be reached (`FANOUT_PRIVATE_URLS=allow`), read once.
pub fn private_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var(PRIVATE_VARIABLE).is_ok_and(|v| v == "allow"))
}

/// Why the service will not connect to `ip`, if it will not.
pub fn refusal(ip: IpAddr, private_ok: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (always, private) = match ip {
        IpAddr::V4(v4) => (refused_v4(v4), private_v4(v4)),
        IpAddr::V6(v6) => (refused_v6(v6), private_v6(v6)),
    };
    if let Some(why) = always {
        return Some(why);
    }
    (private && !private_ok).then_some("a private address")
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() || ip.octets()[0] == 0 {
        Some("an unspecified address")
    } else if ip.is_link_local() {
        Some("a link-local address (instance metadata)")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("a multicast or broadcast address")
    } else {
        None
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback() || ip.is_private() || (a == 100 && (64..128).contains(&b))
}

/// EC2's metadata service over IPv6.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("an unspecified address")
    } else if (first & 0xffc0) == 0xfe80 || ip == METADATA_V6 {
        Some("a link-local address (instance metadata)")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

fn private_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00
}

/// The host and port of an http(s), rtsp or rtmp `url`, its host as the URL standard reads it (so
/// `http://2852039166/` is 169.254.169.254).
fn host_port(url: &str) -> Result<(url::Host<String>, u16), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let default_port = match parsed.scheme() {
        "http" => 80,
        "https" => 443,
        "rtsp" => 554,
        "rtmp" => 1935,
        _ => return Err("not an http(s), rtsp or rtmp URL".to_string()),
    };
    let host = match parsed.host().ok_or("no host")? {
        // rtsp and rtmp hosts are opaque to the URL standard: read as an http host is
        // (so `rtsp://2852039166/` is an address too).
        url::Host::Domain(name) => url::Host::parse(name).map_err(|e| format!("bad host: {e}"))?,
        host => host.to_owned(),
    };
    Ok((host, parsed.port().unwrap_or(default_port)))
}

/// Checks what can be checked without the network: the URL parses, and a host given
/// as an address is one the service connects to. For the API, before it accepts a URL.
pub fn check_literal(url: &str) -> Result<(), String> {
    check_literal_with(url, private_allowed())
}

fn check_literal_with(url: &str, private_ok: bool) -> Result<(), String> {
    let (host, _) = host_port(url)?;
    let Some(ip) = literal(&host) else {
        return Ok(());
    };
    match refusal(ip, private_ok) {
        Some(why) => Err(format!("{ip} is {why}")),
        None => Ok(()),
    }
}

/// The address a host is written as, if it is one.
fn literal(host: &url::Host<String>) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        url::Host::Domain(_) => None,
    }
}

/// Resolves `url`'s host and checks every address it has, as a worker does right before
/// it connects.
pub async fn check(url: &str) -> Result<(), String> {
    check_with(url, private_allowed()).await
}

/// [`check`] with the private-address rule given.
pub async fn check_with(url: &str, private_ok: bool) -> Result<(), String> {
    let (host, port) = host_port(url)?;
    let addrs: Vec<SocketAddr> = match (&host, literal(&host)) {
        (_, Some(ip)) => vec![SocketAddr::new(ip, port)],
        (name, None) => tokio::net::lookup_host((name.to_string(), port))
            .await
            .map_err(|e| format!("{name} does not resolve: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    for addr in addrs {
        if let Some(why) = refusal(addr.ip(), private_ok) {
            return Err(format!("{host} is {} ({why})", addr.ip()));
        }
    }
    Ok(())
}

/// The one HTTP client for clients' URLs (its connection pool and TLS setup built once
/// per process): names resolved through [`Guarded`], no redirect followed (its target
/// would not have been checked), `timeout` for each request unless the request sets its
/// own.
pub fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(std::sync::Arc::new(Guarded))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks `url` ([`check`]) and, for http(s), asks it for its first byte, as a worker does before it hands the URL to a reader
/// that follows redirects or hides the server's answer: the reason when the server
/// does not answer with the content (a redirect, a missing file, an error).
pub async fn check_answer(url: &str) -> Result<(), String> {
    check_answer_with(url, private_allowed()).await
}

/// [`check_answer`] with the private-address rule given.
pub async fn check_answer_with(url: &str, private_ok: bool) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        // rtsp and rtmp: checked on their addresses; their servers are asked by ffmpeg.
        return check_with(url, private_ok).await;
    }
    check_literal_with(url, private_ok)?;
    get(client()?
        .get(url)
        .header(reqwest::header::RANGE, "bytes=0-0"))
    .await?;
    Ok(())
}

/// Sends a GET of [`client`] and keeps the answer only if it is the content. A host
/// given as a name is checked by the client's resolver; one given as an address must
/// have passed [`check_literal`].
pub async fn get(request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    let answer = request
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    match answer_refusal(&answer) {
        Some(why) => Err(why),
        None => Ok(answer),
    }
}

/// Why a server's answer to a GET is not the content, if it is not: a redirect (not
/// followed: its target was never checked) or an error.
fn answer_refusal(answer: &reqwest::Response) -> Option<String> {
    let status = answer.status();
    if status.is_success() {
        return None;
    }
    if status.is_redirection() {
        let to = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("elsewhere");
        return Some(format!(
            "answered {status}, a redirect to {to}: redirects are not followed, give the final URL"
        ));
    }
    Some(format!("answered {status}"))
}

/// A resolver for HTTP clients that answers only the addresses the service connects
/// to: the client connects to what was checked, whatever the name answers next.
#[derive(Debug, Clone, Copy)]
pub struct Guarded;

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let private_ok = private_allowed();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| refusal(a.ip(), private_ok).is_none())
                .collect();
            if kept.is_empty() {
                let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                let why = format!(
                    "{name} resolves to no address the service connects to ({})",
                    shown.join(", ")
                );
                return Err(why.into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn metadata_addresses_are_refused_in_every_spelling() {
        for text in [
            "169.254.169.254",
            "169.254.170.2",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refusal(ip(text), true).is_some(), "{text}");
        }
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/latest/meta-data/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://[::ffff:a9fe:a9fe]/",
            "https://[fd00:ec2::254]/",
            "http://user@169.254.169.254:80/",
        ] {
            let err = check_literal(url).unwrap_err();
            assert!(err.contains("link-local"), "{url}: {err}");
        }
    }

    #[test]
    fn private_addresses_depend_on_the_setting() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(
                refusal(ip(text), false),
                Some("a private address"),
                "{text}"
            );
            assert_eq!(refusal(ip(text), true), None, "{text}");
        }
        for text in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(refusal(ip(text), false), None, "{text}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_pass() {
        assert!(check_literal("ftp://example.com/a.mp4").is_err());
        assert!(check_literal("file:///etc/passwd").is_err());
        assert!(check_literal("http://").is_err());
        assert!(check_literal("https://example.com/a.mp4").is_ok());
        assert!(check_literal("rtsp://169.254.169.254/live").is_err());
        assert!(check_literal("rtmp://2852039166/live").is_err());
        assert!(check_literal("rtsp://cam.example.com/live").is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_on_what_they_resolve_to() {
        // `localhost` resolves from /etc/hosts, without a network.
        let err = check_with("http://localhost:9/video.mp4", false)
            .await
            .unwrap_err();
        assert!(err.contains("private"), "{err}");
        check_with("http://localhost:9/video.mp4", true)
            .await
            .unwrap();
        let err = check_with("http://2852039166/", true).await.unwrap_err();
        assert!(err.contains("link-local"), "{err}");
        // A live camera's rtsp URL is checked on its address, not asked over http.
        let err = check_answer("rtsp://169.254.169.254/live")
            .await
            .unwrap_err();
        assert!(err.contains("link-local"), "{err}");
    }
}
