//! Where webhook deliveries may go. A webhook's URL is chosen by whoever holds a
//! key, and the server makes the request: without a rule, anyone who may create a
//! webhook could make the server call its own API, the database's host, a cloud
//! metadata service or anything else on the internal network (server-side request
//! forgery). So, by default, deliveries go only to public addresses.
//!
//! [`Destinations`] is that rule plus the operator's allow-list (the
//! `webhook_allow` setting). It is applied twice:
//!
//! - when a webhook is created or its URL changed (by the HTTP server, before its
//!   transaction, without looking anything up): a literal address must be public
//!   and the host must not be a name that is local by definition (`localhost`,
//!   `*.internal`, `metadata`, a single-label name…);
//! - when a delivery is sent, on every address the host resolves to then, so that
//!   a name that later points inside (DNS rebinding) is refused all the same.
//!
//! An allowed CIDR lets through the addresses inside it; an allowed name (or
//! `*.suffix`) lets through that name whatever it resolves to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::{StoreError, StoreResult};

/// The name of the setting that allows destinations, as messages cite it.
pub const ALLOW_SETTING: &str = "webhook_allow";

/// The rule for webhook destinations: public addresses only, except what the
/// operator allows. The default allows nothing beyond the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    nets: Vec<Cidr>,
    names: Vec<String>,
}

/// A destination the rule refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The address or host name refused.
    pub target: String,
    /// What kind of destination it is ("loopback", "private", …).
    pub reason: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "destination {} is not allowed ({}); see {ALLOW_SETTING}",
            self.target, self.reason
        )
    }
}

impl std::error::Error for Refused {}

/// An address block of the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (one host).
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Cidr {
            addr: addr.to_canonical(),
            prefix,
        })
    }

    fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Destinations {
    /// The default rule, plus `allow`: CIDRs (`10.1.0.0/16`, `::1/128`), single
    /// addresses, host names (`hooks.corp.internal`) and name suffixes
    /// (`*.corp.internal`). Blank entries are skipped; a malformed one is refused,
    /// naming the setting.
    pub fn new<I, S>(allow: I) -> StoreResult<Destinations>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Destinations::default();
        for entry in allow {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(net) = Cidr::parse(entry) {
                out.nets.push(net);
            } else if is_name_pattern(entry) {
                out.names.push(normal_name(entry));
            } else {
                return Err(StoreError::invalid(
                    ALLOW_SETTING,
                    format!(
                        "{entry:?} is neither a CIDR such as 10.0.0.0/8, an IP address, \
                         a host name nor *.domain"
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// Whether the operator allowed nothing beyond the default rule.
    pub fn is_default(&self) -> bool {
        self.nets.is_empty() && self.names.is_empty()
    }

    /// Whether the allow-list names `host` (exactly, or by a `*.suffix` entry).
    pub fn allows_name(&self, host: &str) -> bool {
        let host = normal_name(host);
        self.names.iter().any(|n| match n.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.')),
            None => *n == host,
        })
    }

    /// Whether deliveries may go to `addr`: a public address, or one the allow-list
    /// covers.
    pub fn check_addr(&self, addr: IpAddr) -> Result<(), Refused> {
        let canonical = addr.to_canonical();
        if self.nets.iter().any(|n| n.contains(canonical)) {
            return Ok(());
        }
        match address_reason(addr) {
            Some(reason) => Err(Refused {
                target: canonical.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Whether a URL's host may be written as a webhook's destination: an address
    /// must pass [`Destinations::check_addr`]; a name must be allowed or not be
    /// local by definition. Nothing is looked up.
    pub fn check_host(&self, host: &Host<&str>) -> Result<(), Refused> {
        match host {
            Host::Ipv4(a) => self.check_addr(IpAddr::V4(*a)),
            Host::Ipv6(a) => self.check_addr(IpAddr::V6(*a)),
            Host::Domain(name) => {
                if self.allows_name(name) {
                    return Ok(());
                }
                match name_reason(name) {
                    Some(reason) => Err(Refused {
                        target: normal_name(name),
                        reason,
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// [`Destinations::check_host`] on `url`'s host, as a validation error naming
    /// `field` (a URL without a host is the syntax check's to refuse).
    pub fn check_url(&self, field: &str, url: &Url) -> StoreResult<()> {
        let Some(host) = url.host() else {
            return Ok(());
        };
        self.check_host(&host).map_err(|r| {
            StoreError::invalid(
                field,
                format!(
                    "must not point at {} ({}): webhooks go to public addresses only, \
                     unless the operator allows the destination with {ALLOW_SETTING}",
                    r.target, r.reason
                ),
            )
        })
    }

    /// The check made just before a delivery is sent to `url`: a literal address
    /// is judged here (an HTTP client does not resolve it); a name is judged on the
    /// addresses it resolves to, by the dispatcher's resolver. A URL that does not
    /// parse passes, and fails in the client.
    pub fn check_literal(&self, url: &str) -> Result<(), Refused> {
        match Url::parse(url).ok().as_ref().and_then(Url::host) {
            Some(Host::Ipv4(a)) => self.check_addr(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => self.check_addr(IpAddr::V6(a)),
            _ => Ok(()),
        }
    }
}

/// A host name lower-cased and without its final dot (`LocalHost.` is `localhost`).
fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A host name, or `*.` and one: letters, digits, `-`, `_` and dots.
fn is_name_pattern(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
        && !name.contains("..")
}

/// Why a host name is refused by default: names that mean this machine, a cloud's
/// metadata service or the local network whatever DNS says.
fn name_reason(name: &str) -> Option<&'static str> {
    let name = normal_name(name);
    let under = |suffix: &str| name == suffix || name.ends_with(&format!(".{suffix}"));
    if under("localhost")
        || matches!(
            name.as_str(),
            "localhost.localdomain" | "ip6-localhost" | "ip6-loopback"
        )
    {
        return Some("loopback name");
    }
    if matches!(
        name.as_str(),
        "metadata"
            | "metadata.google.internal"
            | "metadata.goog"
            | "instance-data"
            | "instance-data.ec2.internal"
    ) {
        return Some("cloud metadata name");
    }
    // Reserved for private use (`.internal`, `.home.arpa`), multicast DNS (`.local`)
    // and the usual local domain.
    if ["internal", "local", "localdomain", "home.arpa"]
        .iter()
        .any(|s| under(s))
    {
        return Some("local network name");
    }
    if !name.contains('.') {
        // Completed by the resolver's search domains: a name on the local network.
        return Some("single-label name");
    }
    None
}

/// Why an address is refused by default, or `None` for a public one.
pub fn address_reason(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => v4_reason(a),
        IpAddr::V6(a) => v6_reason(a),
    }
}

fn v4_reason(a: Ipv4Addr) -> Option<&'static str> {
    match a.octets() {
        [0, ..] => Some("unspecified"),
        [127, ..] => Some("loopback"),
        [10, ..] | [192, 168, ..] => Some("private"),
        [172, b, ..] if (16..=31).contains(&b) => Some("private"),
        [100, b, ..] if (64..=127).contains(&b) => Some("shared address space"),
        [169, 254, ..] => Some("link-local"),
        // IETF protocol assignments (some clouds' metadata service is 192.0.0.192)
        // and benchmarking networks.
        [192, 0, 0, _] | [198, 18 | 19, ..] => Some("reserved"),
        [255, 255, 255, 255] => Some("broadcast"),
        [224..=239, ..] => Some("multicast"),
        [240..=255, ..] => Some("reserved"),
        _ => None,
    }
}

fn v6_reason(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    // An IPv4 address written as IPv6 is judged as the IPv4 address it reaches.
    if let Some(v4) = embedded_v4(a) {
        return v4_reason(v4);
    }
    match a.segments()[0] {
        s if s & 0xffc0 == 0xfe80 => Some("link-local"),
        s if s & 0xffc0 == 0xfec0 => Some("site-local"),
        s if s & 0xfe00 == 0xfc00 => Some("unique-local"),
        s if s & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// The IPv4 address inside an IPv6 one that carries it: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), translated (`::ffff:0:a.b.c.d`), NAT64
/// (`64:ff9b::/96`, `64:ff9b:1::/48`) and 6to4 (`2002::/16`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    let zero = |r: std::ops::Range<usize>| s[r].iter().all(|x| *x == 0);
    if zero(0..5) && (s[5] == 0xffff || s[5] == 0) {
        return Some(low);
    }
    if zero(0..4) && s[4] == 0xffff && s[5] == 0 {
        return Some(low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (zero(2..6) || s[2] == 1) {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_check(d: &Destinations, url: &str) -> Result<(), String> {
        let parsed = Url::parse(url).unwrap();
        d.check_url("url", &parsed).map_err(|e| {
            assert_eq!(e.field(), Some("url"));
            e.to_string()
        })
    }

    const HOSTILE: &[&str] = &[
        "http://127.0.0.1:8080/",
        "http://127.8.9.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://metadata/",
        "http://instance-data/",
        "http://[::1]/",
        "http://localhost:8080/",
        "http://LocalHost./",
        "http://api.localhost/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://%6c%6fcalhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://100.100.100.200/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://192.0.0.192/",
        "http://redis:6379/",
        "http://db.internal/",
        "http://printer.local/",
    ];

    #[test]
    fn hostile_destinations_are_refused_by_default() {
        let d = Destinations::default();
        for url in HOSTILE {
            let e = url_check(&d, url).expect_err(url);
            assert!(e.contains(ALLOW_SETTING), "{url}: {e}");
        }
        let e = url_check(&d, "http://2130706433/").unwrap_err();
        assert!(e.contains("127.0.0.1 (loopback)"), "{e}");
        let e = url_check(&d, "http://[::ffff:127.0.0.1]/").unwrap_err();
        assert!(e.contains("127.0.0.1 (loopback)"), "{e}");
        let e = url_check(&d, "http://LocalHost./").unwrap_err();
        assert!(e.contains("localhost (loopback name)"), "{e}");
    }

    #[test]
    fn public_destinations_pass() {
        let d = Destinations::default();
        for url in [
            "https://hooks.example.com/in",
            "https://example.com./x",
            "http://93.184.216.34/",
            "http://8.8.8.8:8080/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "https://internal.example.com/",
            "https://localhost.example.com/",
        ] {
            url_check(&d, url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn the_allow_list_lets_through_what_it_names() {
        let d = Destinations::new([
            " 127.0.0.1/32 ",
            "10.1.0.0/16",
            "fd00::/8",
            "192.168.5.5",
            "hooks.corp.internal",
            "*.svc.local",
            "",
        ])
        .unwrap();
        assert!(!d.is_default());
        for url in [
            "http://127.0.0.1:9000/",
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
            "http://10.1.200.3/",
            "http://[fd00:ec2::254]/",
            "http://192.168.5.5/",
            "http://hooks.corp.internal/",
            "http://HOOKS.corp.internal./",
            "http://a.b.svc.local/",
        ] {
            url_check(&d, url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "http://127.0.0.2/",
            "http://10.2.0.1/",
            "http://192.168.5.6/",
            "http://other.corp.internal/",
            "http://svc.local/",
            "http://xsvc.local/",
            "http://localhost/",
            "http://169.254.169.254/",
        ] {
            url_check(&d, url).expect_err(url);
        }
        assert!(d.check_addr("127.0.0.1".parse().unwrap()).is_ok());
        assert!(d.check_addr("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(d.allows_name("x.svc.local."));
    }

    #[test]
    fn malformed_allow_entries_name_the_setting() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "::1/129",
            "http://x.example",
            "a b",
            "*.",
            "..x",
        ] {
            let e = Destinations::new([bad]).unwrap_err();
            assert_eq!(e.field(), Some(ALLOW_SETTING), "{bad}");
        }
        assert!(Destinations::new(["0.0.0.0/0", "::/0"]).is_ok());
    }

    #[test]
    fn delivery_time_checks_judge_literal_addresses() {
        let d = Destinations::default();
        let r = d.check_literal("http://127.0.0.1:1/x").unwrap_err();
        assert_eq!(
            r.to_string(),
            "destination 127.0.0.1 is not allowed (loopback); see webhook_allow"
        );
        let r = d.check_literal("http://[fd00:ec2::254]/").unwrap_err();
        assert_eq!(r.reason, "unique-local");
        // Names are judged on what they resolve to, by the dispatcher's resolver.
        assert!(d.check_literal("http://localhost:1/").is_ok());
        assert!(d.check_literal("https://hooks.example.com/").is_ok());
        let d = Destinations::new(["127.0.0.0/8"]).unwrap();
        assert!(d.check_literal("http://127.0.0.1:1/x").is_ok());
    }

    #[test]
    fn addresses_are_classified() {
        let reason = |a: &str| address_reason(a.parse().unwrap());
        assert_eq!(reason("127.0.0.1"), Some("loopback"));
        assert_eq!(reason("169.254.169.254"), Some("link-local"));
        assert_eq!(reason("100.64.0.1"), Some("shared address space"));
        assert_eq!(reason("0.0.0.0"), Some("unspecified"));
        assert_eq!(reason("::"), Some("unspecified"));
        assert_eq!(reason("fe80::1"), Some("link-local"));
        assert_eq!(reason("fd00:ec2::254"), Some("unique-local"));
        assert_eq!(reason("::ffff:10.0.0.1"), Some("private"));
        assert_eq!(reason("::ffff:0:10.0.0.1"), Some("private"));
        assert_eq!(reason("64:ff9b:1::7f00:1"), Some("loopback"));
        assert_eq!(reason("8.8.8.8"), None);
        assert_eq!(reason("2001:4860:4860::8888"), None);
    }
}
