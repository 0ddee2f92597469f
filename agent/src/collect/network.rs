//! The network section: interfaces, default routes, DNS configuration and live checks, proxies.
//!
//! The DNS check asks each configured server directly (one UDP query, short timeout), so a dead
//! server is named; configured probe names are also resolved through the system resolver, which is
//! what applications use. The collector check is a TCP connect to the enrolled collector.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lifeline_shared::v1::snapshot::{Check, Interface, Network, ProxySetting, Route};

use super::{Options, Problems, read_trimmed};
use crate::redact;

/// How long one DNS server or lookup may take before it counts as failed.
pub const DNS_TIMEOUT: Duration = Duration::from_millis(1500);
/// At most this many servers are queried (the resolver itself uses three).
const MAX_SERVERS_CHECKED: usize = 3;

pub fn collect(options: &Options) -> (Network, Problems) {
    let mut problems = Vec::new();
    let resolv = match std::fs::read_to_string("/etc/resolv.conf") {
        Ok(text) => parse_resolv_conf(&text),
        Err(e) => {
            problems.push(format!("/etc/resolv.conf: {e}"));
            ResolvConf::default()
        }
    };
    // With systemd-resolved the file names the local stub; the real servers are listed here.
    let upstream = if resolv.nameservers.iter().any(|s| s == "127.0.0.53") {
        std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
            .map(|t| parse_resolv_conf(&t).nameservers)
            .unwrap_or_default()
    } else {
        Vec::new()
    };

    // Checks run in parallel with the rest of this section.
    let checks = spawn_dns_checks(resolv.nameservers.clone(), options.dns_probe_names.clone());
    let collector = options.collector.clone().map(|target| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(check_tcp(&target, DNS_TIMEOUT));
        });
        rx
    });

    let interfaces = interfaces(&mut problems);
    let mut default_routes = Vec::new();
    match std::fs::read_to_string("/proc/net/route") {
        Ok(text) => default_routes.extend(parse_ipv4_routes(&text)),
        Err(e) => problems.push(format!("/proc/net/route: {e}")),
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") {
        default_routes.extend(parse_ipv6_routes(&text));
    }

    let mut dns_checks: Vec<Check> = checks.into_iter().filter_map(|rx| rx.recv().ok()).collect();
    if resolv.nameservers.is_empty() {
        dns_checks.push(Check {
            target: "/etc/resolv.conf".to_owned(),
            ok: false,
            detail: "no nameserver configured".to_owned(),
            elapsed_ms: 0,
        });
    }
    let collector_check = collector.and_then(|rx| rx.recv().ok());

    let mut dns_servers = resolv.nameservers;
    dns_servers.extend(upstream.into_iter().map(|s| format!("{s} (upstream)")));
    (
        Network {
            interfaces,
            default_routes,
            dns_servers,
            dns_search: resolv.search,
            dns_checks,
            collector_check,
            proxy: proxy_settings(),
        },
        problems,
    )
}

fn interfaces(problems: &mut Problems) -> Vec<Interface> {
    let networks = match sysinfo::Networks::new_with_refreshed_list() {
        Ok(n) => n,
        Err(e) => {
            problems.push(format!("network interfaces: {e}"));
            return Vec::new();
        }
    };
    let mut out: Vec<Interface> = networks
        .iter()
        .map(|(name, data)| {
            let name = name.to_string_lossy().into_owned();
            let sys = format!("/sys/class/net/{name}");
            let mac = data.mac_address();
            Interface {
                name: name.clone(),
                mac: (!mac.is_unspecified()).then(|| mac.to_string()),
                addresses: data
                    .ip_networks()
                    .iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect(),
                state: read_trimmed(format!("{sys}/operstate")).unwrap_or_else(|| "unknown".into()),
                carrier: read_trimmed(format!("{sys}/carrier")).map(|c| c == "1"),
                speed_mbps: read_trimmed(format!("{sys}/speed"))
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|s| u32::try_from(s).ok()),
                mtu: u32::try_from(data.mtu()).ok(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
                rx_errors: data.total_errors_on_received(),
                tx_errors: data.total_errors_on_transmitted(),
                loopback: name == "lo"
                    || data.ip_networks().iter().all(|n| n.addr.is_loopback())
                        && !data.ip_networks().is_empty(),
            }
        })
        .collect();
    for interface in &mut out {
        // IPv4 first: it is what people look for.
        interface.addresses.sort_by_key(|a| a.contains(':'));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What `/etc/resolv.conf` configures.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
}

/// Parses resolv.conf(5): `nameserver`, `search` and `domain` lines; comments and junk ignored.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(server) = words.next().filter(|s| s.parse::<IpAddr>().is_ok()) {
                    conf.nameservers.push(server.to_owned());
                }
            }
            // The last search or domain line wins, as in the resolver.
            Some("search") | Some("domain") => conf.search = words.map(str::to_owned).collect(),
            _ => {}
        }
    }
    conf
}

/// Default routes from `/proc/net/route` (hex, host byte order).
pub fn parse_ipv4_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gateway, mask) = (f.first()?, f.get(1)?, f.get(2)?, f.get(7)?);
            if *dest != "00000000" || *mask != "00000000" {
                return None;
            }
            let gw = u32::from_str_radix(gateway, 16).ok()?;
            Some(Route {
                family: "ipv4".to_owned(),
                gateway: Ipv4Addr::from(gw.swap_bytes()).to_string(),
                interface: (*iface).to_owned(),
            })
        })
        .collect()
}

/// Default routes from `/proc/net/ipv6_route` (destination ::/0 with a gateway, not loopback).
pub fn parse_ipv6_routes(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, prefix, gateway, iface) = (f.first()?, f.get(1)?, f.get(4)?, f.get(9)?);
            if dest.chars().any(|c| c != '0') || *prefix != "00" || *iface == "lo" {
                return None;
            }
            let gw = u128::from_str_radix(gateway, 16).ok()?;
            Some(Route {
                family: "ipv6".to_owned(),
                gateway: Ipv6Addr::from(gw).to_string(),
                interface: (*iface).to_owned(),
            })
        })
        .collect()
}

fn spawn_dns_checks(servers: Vec<String>, names: Vec<String>) -> Vec<mpsc::Receiver<Check>> {
    let mut receivers = Vec::new();
    for server in servers.into_iter().take(MAX_SERVERS_CHECKED) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(query_server(&server, DNS_TIMEOUT));
        });
        receivers.push(rx);
    }
    for name in names {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(resolve_name(&name, DNS_TIMEOUT));
        });
        receivers.push(rx);
    }
    receivers
}

/// Builds a DNS query (RFC 1035) for the root's NS records: every recursive resolver can answer it
/// without leaking which names this machine looks up.
pub fn root_ns_query(id: u16) -> [u8; 17] {
    let [hi, lo] = id.to_be_bytes();
    [
        hi, lo, // id
        0x01, 0x00, // flags: recursion desired
        0x00, 0x01, // one question
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no answers, authority, additional
        0x00, // the root name
        0x00, 0x02, // type NS
        0x00, 0x01, // class IN
    ]
}

/// The response code of a DNS answer to query `id`, or `None` when it is not one.
pub fn response_code(answer: &[u8], id: u16) -> Option<u8> {
    if answer.len() < 12 || answer[0..2] != id.to_be_bytes() || answer[2] & 0x80 == 0 {
        return None;
    }
    Some(answer[3] & 0x0f)
}

fn rcode_name(code: u8) -> &'static str {
    match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "unknown response code",
    }
}

fn query_server(server: &str, timeout: Duration) -> Check {
    match server.parse::<IpAddr>() {
        Ok(ip) => query_dns(SocketAddr::new(ip, 53), timeout),
        Err(_) => finish(
            format!("server {server}"),
            Instant::now(),
            Err("not an IP address".to_owned()),
        ),
    }
}

/// Sends the root NS query to `server` and waits for its answer.
pub fn query_dns(server: SocketAddr, timeout: Duration) -> Check {
    let started = Instant::now();
    let target = format!("server {}", server.ip());
    let no_answer = || format!("no answer within {} ms", timeout.as_millis());
    let result = (|| -> Result<String, String> {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        socket.connect(server).map_err(|e| e.to_string())?;
        let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(0x4c4c);
        socket.send(&root_ns_query(id)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(no_answer());
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let n = socket.recv(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => no_answer(),
                _ => e.to_string(),
            })?;
            // Anything that is not the answer to our query is ignored.
            if let Some(code) = response_code(&buf[..n], id) {
                return match code {
                    0 | 3 => Ok(format!("answered ({})", rcode_name(code))),
                    _ => Err(format!("answered {}", rcode_name(code))),
                };
            }
        }
    })();
    finish(target, started, result)
}

fn resolve_name(name: &str, timeout: Duration) -> Check {
    let started = Instant::now();
    let target = format!("resolve {name}");
    let (tx, rx) = mpsc::channel();
    let owned = name.to_owned();
    // getaddrinfo has no timeout of its own: run it on a thread and stop waiting at the deadline.
    std::thread::spawn(move || {
        let _ = tx.send((owned.as_str(), 0).to_socket_addrs().map(|a| a.count()));
    });
    let result = match rx.recv_timeout(timeout) {
        Ok(Ok(0)) => Err("no addresses".to_owned()),
        Ok(Ok(n)) => Ok(format!("{n} address(es)")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    finish(target, started, result)
}

/// TCP connect to `host:port` within `timeout`.
pub fn check_tcp(target: &str, timeout: Duration) -> Check {
    let started = Instant::now();
    let result = (|| -> Result<String, String> {
        let addrs: Vec<SocketAddr> = target
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve: {e}"))?
            .collect();
        let mut last = "no addresses".to_owned();
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => return Ok(format!("connected to {addr}")),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    })();
    finish(format!("connect {target}"), started, result)
}

fn finish(target: String, started: Instant, result: Result<String, String>) -> Check {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        target,
        ok,
        detail,
        elapsed_ms,
    }
}

/// Proxy variables of the agent's own environment, with credentials masked.
fn proxy_settings() -> Vec<ProxySetting> {
    [
        "http_proxy",
        "https_proxy",
        "ftp_proxy",
        "all_proxy",
        "no_proxy",
    ]
    .into_iter()
    .flat_map(|v| [v.to_owned(), v.to_ascii_uppercase()])
    .filter_map(|variable| {
        let value = std::env::var(&variable).ok().filter(|v| !v.is_empty())?;
        Some(ProxySetting {
            value: redact::redact_text(&value),
            variable,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolv_conf() {
        let conf = parse_resolv_conf(include_str!("../../testdata/resolv_conf_office.txt"));
        assert_eq!(conf.nameservers, ["10.0.0.53", "2001:db8::53"]);
        assert_eq!(conf.search, ["corp.example", "example"]);
    }

    #[test]
    fn finds_ipv4_default_route() {
        let routes = parse_ipv4_routes(include_str!("../../testdata/proc_net_route.txt"));
        assert_eq!(
            routes,
            [Route {
                family: "ipv4".into(),
                gateway: "192.168.1.1".into(),
                interface: "wlp2s0".into()
            }]
        );
    }

    #[test]
    fn no_default_route_when_only_local_networks() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                    eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert!(parse_ipv4_routes(text).is_empty());
    }

    #[test]
    fn finds_ipv6_default_route() {
        let text = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                    fe800000000000000000000000000001 00000400 00000000 00000000 00000003 wlp2s0\n\
                    00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                    00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        let routes = parse_ipv6_routes(text);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].gateway, "fe80::1");
        assert_eq!(routes[0].interface, "wlp2s0");
    }

    #[test]
    fn dns_answer_must_match_the_query() {
        let mut answer = root_ns_query(0xbeef).to_vec();
        assert_eq!(
            response_code(&answer, 0xbeef),
            None,
            "a query is not an answer"
        );
        answer[2] |= 0x80; // QR: response
        answer[3] = 0x03; // NXDOMAIN
        assert_eq!(response_code(&answer, 0xbeef), Some(3));
        assert_eq!(response_code(&answer, 0xbeee), None);
        assert_eq!(response_code(&answer[..5], 0xbeef), None);
    }

    #[test]
    fn a_silent_dns_server_fails_within_the_timeout() {
        // A bound UDP socket that never answers stands in for a dead server.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let check = query_dns(silent.local_addr().unwrap(), Duration::from_millis(200));
        assert!(!check.ok);
        assert_eq!(check.detail, "no answer within 200 ms");
        assert_eq!(check.target, "server 127.0.0.1");
    }

    fn answering_server(rcode: u8) -> SocketAddr {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            // A stray packet first: must be ignored.
            server.send_to(b"junk", peer).unwrap();
            buf[2] |= 0x80;
            buf[3] = rcode;
            server.send_to(&buf[..n], peer).unwrap();
        });
        addr
    }

    #[test]
    fn an_answering_dns_server_passes_and_a_refusing_one_fails() {
        let check = query_dns(answering_server(0), Duration::from_secs(2));
        assert!(check.ok, "{}", check.detail);
        assert_eq!(check.detail, "answered (NOERROR)");
        let check = query_dns(answering_server(5), Duration::from_secs(2));
        assert!(!check.ok);
        assert_eq!(check.detail, "answered REFUSED");
    }

    #[test]
    fn closed_port_fails_the_tcp_check() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(check_tcp(&addr.to_string(), Duration::from_secs(1)).ok);
        drop(listener);
        let check = check_tcp(&addr.to_string(), Duration::from_secs(1));
        assert!(!check.ok);
        assert!(check.detail.contains("refused"), "{}", check.detail);
    }
}
