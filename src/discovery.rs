//! mDNS with mdns-sd: `dars serve` announces itself as `_dars._tcp.local.` (and as
//! `_http._tcp.local.` for generic browsers), and `dars peers` finds other dars servers on the
//! network. Multicast failing is a warning, never fatal: phones reach the server by address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, HostnameResolutionEvent, IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

pub const DARS_SERVICE: &str = "_dars._tcp.local.";
pub const HTTP_SERVICE: &str = "_http._tcp.local.";

/// What a server says about itself in its TXT record.
#[derive(Debug, Clone, Default)]
pub struct Announce {
    pub centre: String,
    /// The address the server listens on: only where it answers is announced.
    pub listen: Option<IpAddr>,
    pub port: u16,
    /// `fingerprint:sequence` of each publisher whose package is installed.
    pub sequences: Vec<String>,
    /// Fingerprints of the keys this server trusts.
    pub trusted: Vec<String>,
}

/// Keeps the announcement alive; dropping it withdraws it.
pub struct Announcement {
    daemon: ServiceDaemon,
    names: Vec<String>,
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcement").field("names", &self.names).finish()
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.daemon.unregister(name);
        }
        let _ = self.daemon.shutdown();
    }
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "dars".to_owned());
    format!("{name}.local.")
}

/// Announces the server; logs a warning and returns `None` if multicast is unavailable.
/// What happens later (the announcement going out, a name clash renaming it, sockets that
/// cannot be opened) is logged from the daemon's own events.
pub fn announce(info: &Announce) -> Option<Announcement> {
    let specific = info.listen.filter(|ip| !ip.is_unspecified());
    if specific.is_some_and(|ip| ip.is_loopback()) {
        tracing::info!("listening on a loopback address only: not announced on the network");
        return None;
    }
    if let Err(e) = probe_port() {
        tracing::warn!(
            "mDNS: UDP port {MDNS_PORT} cannot be shared ({e}); another program holds it, so this server is not announced. \
             Phones still reach it by its address"
        );
        return None;
    }
    if specific.is_none() && !any_card_up() {
        tracing::warn!("mDNS: no network card is up, so there is nowhere to announce this server yet");
    }
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("mDNS: cannot announce on the network: {e}; phones still reach the server by its address");
            return None;
        }
    };
    // Loopback is no place to be found from, and a name claimed there without a clash
    // (while the LAN side was renamed) leaks into answers on the LAN.
    let _ = daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6]);
    watch_events(&daemon, &info.centre);
    let mut props = HashMap::new();
    props.insert("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    props.insert("centre".to_owned(), info.centre.clone());
    props.insert("seq".to_owned(), info.sequences.join(","));
    props.insert("keys".to_owned(), info.trusted.join(","));
    let host = host_name();
    let mut names = Vec::new();
    for (service, path) in [(DARS_SERVICE, "/mirror/"), (HTTP_SERVICE, "/")] {
        let mut props = props.clone();
        props.insert("path".to_owned(), path.to_owned());
        let service_info = match specific {
            Some(ip) => ServiceInfo::new(service, &info.centre, &host, ip, info.port, props),
            None => {
                ServiceInfo::new(service, &info.centre, &host, (), info.port, props).map(ServiceInfo::enable_addr_auto)
            }
        };
        let registered = service_info.and_then(|service_info| {
            let name = service_info.get_fullname().to_owned();
            daemon.register(service_info).map(|()| name)
        });
        match registered {
            Ok(name) => names.push(name),
            Err(e) => tracing::warn!("mDNS: cannot announce {service}: {e}"),
        }
    }
    if names.is_empty() {
        let _ = daemon.shutdown();
        return None;
    }
    Some(Announcement { daemon, names })
}

const MDNS_PORT: u16 = 5353;

/// Binds the mDNS port the way mdns-sd does (shared), to tell early whether it can work.
fn probe_port() -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], MDNS_PORT)).into())
}

fn any_card_up() -> bool {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .iter()
        .any(|i| !i.is_loopback() && i.is_oper_up())
}

/// Logs what the mDNS daemon reports: the first announcement, name changes after a clash,
/// and errors (port 5353 taken, multicast not permitted), as warnings.
fn watch_events(daemon: &ServiceDaemon, centre: &str) {
    let events = match daemon.monitor() {
        Ok(events) => events,
        Err(e) => return tracing::warn!("mDNS: cannot follow the announcement: {e}"),
    };
    let centre = centre.to_owned();
    let spawned = std::thread::Builder::new().name("dars-mdns".to_owned()).spawn(move || {
        let mut announced = false;
        while let Ok(event) = events.recv() {
            match event {
                DaemonEvent::Announce(name, _) if !announced && name.ends_with(DARS_SERVICE) => {
                    announced = true;
                    let shown = name.strip_suffix(&format!(".{DARS_SERVICE}")).map_or(name.clone(), unescape);
                    tracing::info!("announced on the local network as \"{shown}\" ({DARS_SERVICE})");
                }
                DaemonEvent::NameChange(change) => {
                    let shown = |n: &str| {
                        n.strip_suffix(&format!(".{DARS_SERVICE}"))
                            .or_else(|| n.strip_suffix(&format!(".{HTTP_SERVICE}")))
                            .map_or(n.to_owned(), unescape)
                    };
                    tracing::info!(
                        "another server on the network is also called \"{centre}\": announced as \"{}\" instead (was \"{}\")",
                        shown(&change.new_name),
                        shown(&change.original)
                    );
                }
                DaemonEvent::Error(e) => tracing::warn!("mDNS: {e}; phones still reach the server by its address"),
                _ => {}
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("mDNS: cannot follow the announcement: {e}");
    }
}

/// Another dars server found on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The instance name (the centre's name, with " (2)" etc. after a clash).
    pub name: String,
    pub centre: String,
    pub version: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub sequences: String,
}

impl Peer {
    /// The address of its mirror, preferring IPv4.
    pub fn mirror_url(&self) -> Option<String> {
        let ip = self
            .addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| self.addresses.first())?;
        Some(match ip {
            IpAddr::V4(v4) => format!("http://{v4}:{}/mirror/", self.port),
            IpAddr::V6(v6) => format!("http://[{v6}]:{}/mirror/", self.port),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot search the network (mDNS): {0}")]
    Mdns(#[from] mdns_sd::Error),
}

/// Listens for `wait` and returns the dars servers that answered.
pub fn browse(wait: Duration) -> Result<Vec<Peer>, DiscoveryError> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(DARS_SERVICE)?;
    let mut deadline = Instant::now() + wait;
    let mut extended = false;
    let mut found: HashMap<String, Peer> = HashMap::new();
    let mut hosts: HashMap<String, String> = HashMap::new();
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            // Answers seen while a newcomer is still claiming its name can be mixed up (two
            // names at one address), and a first answer may carry only a link-local IPv6
            // address: listen a little longer once, letting later answers replace them.
            if !extended && unsettled(&found) {
                extended = true;
                deadline = Instant::now() + Duration::from_secs(3);
                continue;
            }
            break;
        };
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                let name = service
                    .fullname
                    .strip_suffix(&format!(".{DARS_SERVICE}"))
                    .unwrap_or(&service.fullname);
                let text = |key: &str| {
                    service
                        .txt_properties
                        .get_property_val_str(key)
                        .unwrap_or("")
                        .to_owned()
                };
                let mut addresses: Vec<IpAddr> = service.addresses.iter().map(|a| a.to_ip_addr()).collect();
                addresses.sort();
                // Keep the IPv4 address of an earlier answer when a later one lacks it.
                if let Some(old) = found.get(&service.fullname)
                    && !addresses.iter().any(IpAddr::is_ipv4)
                {
                    addresses.extend(old.addresses.iter().filter(|a| a.is_ipv4()));
                }
                hosts.insert(service.fullname.clone(), service.host.clone());
                found.insert(
                    service.fullname.clone(),
                    Peer {
                        name: unescape(name),
                        centre: text("centre"),
                        version: text("version"),
                        addresses,
                        port: service.port,
                        sequences: text("seq"),
                    },
                );
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => {
                if Instant::now() < deadline {
                    break;
                }
            }
        }
    }
    let _ = daemon.stop_browse(DARS_SERVICE);
    // A peer heard only at a link-local IPv6 address: ask for its host's IPv4 address.
    for (fullname, peer) in &mut found {
        if peer.addresses.iter().any(IpAddr::is_ipv4) {
            continue;
        }
        if let Some(host) = hosts.get(fullname) {
            peer.addresses
                .extend(resolve_ipv4(&daemon, host, Duration::from_secs(3)));
        }
    }
    let _ = daemon.shutdown();
    let mut peers: Vec<Peer> = found.into_values().collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

/// The IPv4 addresses of an mDNS host name, asked for directly.
fn resolve_ipv4(daemon: &ServiceDaemon, host: &str, wait: Duration) -> Vec<IpAddr> {
    let Ok(events) = daemon.resolve_hostname(host, Some(u64::try_from(wait.as_millis()).unwrap_or(3000))) else {
        return Vec::new();
    };
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(HostnameResolutionEvent::AddressesFound(_, addresses)) => {
                found.extend(addresses.iter().map(|a| a.to_ip_addr()).filter(IpAddr::is_ipv4));
                if !found.is_empty() {
                    break;
                }
            }
            Ok(HostnameResolutionEvent::SearchTimeout(_) | HostnameResolutionEvent::SearchStopped(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = daemon.stop_resolve_hostname(host);
    found.sort();
    found.dedup();
    found
}

/// Whether what was heard may still change: a peer with no IPv4 address, or two names
/// answering from the same address and port.
fn unsettled(found: &HashMap<String, Peer>) -> bool {
    let mut seen = std::collections::HashSet::new();
    found.values().any(|p| !p.addresses.iter().any(IpAddr::is_ipv4))
        || found
            .values()
            .flat_map(|p| p.addresses.iter().map(move |a| (*a, p.port)))
            .any(|key| !seen.insert(key))
}

/// mDNS escapes dots and backslashes in instance names.
fn unescape(name: &str) -> String {
    name.replace("\\.", ".").replace("\\\\", "\\")
}
