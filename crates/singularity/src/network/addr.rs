//! Address types of the network model: MAC addresses, IPv4/IPv6 addresses
//! with a prefix length, and the lenient mask parsing real hosts need
//! (dotted masks, prefixes as numbers or strings, IPv6 hex-colon masks).
//! Pure: no I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A MAC address or an address with a prefix that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Not twelve hex digits (with or without separators).
    #[error("'{0}' is not a MAC address")]
    Mac(String),
    /// No `/` between address and prefix.
    #[error("'{0}' is not ADDRESS/PREFIX")]
    NoPrefix(String),
    /// The address part is not an IP address.
    #[error("'{0}' is not an IP address")]
    Ip(String),
    /// The prefix part is not a number, or too large for the family.
    #[error("'{prefix}' is not a prefix length for {addr}")]
    Prefix {
        /// The prefix part, as given.
        prefix: String,
        /// The address it goes with.
        addr: IpAddr,
    },
    /// An IPv6 prefix where IPv4 is wanted.
    #[error("'{0}' is not an IPv4 address")]
    NotV4(String),
    /// An IPv4 prefix where IPv6 is wanted.
    #[error("'{0}' is not an IPv6 address")]
    NotV6(String),
}

/// What is wrong with a network mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskProblem {
    /// A prefix length above the family's (32 or 128).
    AboveMax(u8),
    /// It has a `.` but is not a dotted IPv4 mask.
    NotDotted,
    /// It has a `:` but is not an IPv6 mask.
    NotV6Mask,
    /// A mask with holes.
    NotContiguous,
    /// An IPv4 mask that is neither dotted nor a number.
    NotV4Mask,
    /// An IPv6 mask that is neither hex-colon nor a number.
    NotPrefix,
}

impl fmt::Display for MaskProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskProblem::AboveMax(max) => write!(f, "is above {max}"),
            MaskProblem::NotDotted => f.write_str("is not a dotted mask"),
            MaskProblem::NotV6Mask => f.write_str("is not an IPv6 mask"),
            MaskProblem::NotContiguous => f.write_str("is not contiguous"),
            MaskProblem::NotV4Mask => f.write_str("is not a mask or prefix length"),
            MaskProblem::NotPrefix => f.write_str("is not a prefix length"),
        }
    }
}

/// A network mask that gives no prefix length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("netmask {mask} {problem}")]
pub struct MaskError {
    /// The mask as the JSON gave it (a string quoted).
    pub mask: String,
    /// What is wrong with it.
    pub problem: MaskProblem,
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Upper case with colons (`BC:76:4E:20:75:72`), as NetworkManager and
    /// RHEL `HWADDR=` write it.
    pub fn upper(&self) -> String {
        self.to_string().to_ascii_uppercase()
    }

    /// Upper case without separators (`BC764E207572`), the xenstore key form.
    pub fn plain(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }
}

impl FromStr for Mac {
    type Err = AddrError;

    /// Accepts any case, with `:`, `-` or `.` separators or none.
    fn from_str(s: &str) -> Result<Mac, AddrError> {
        let hex: Vec<u8> = s.bytes().filter(|b| !matches!(b, b':' | b'-' | b'.')).collect();
        let bad = || AddrError::Mac(s.to_string());
        if hex.len() != 12 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    /// Lower case with colons, as in `/sys/class/net/*/address`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An IPv4 address with its prefix length (`104.130.4.72/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The network mask (`255.255.255.0` for /24).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask32(self.prefix))
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & mask32(self.prefix))
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask32(self.prefix) == u32::from(self.network())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 address with its prefix length (`2001:db8::1/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0..=128.
    pub prefix: u8,
}

impl Ipv6Cidr {
    /// The network mask in hex-colon form (`ffff:ffff:ffff:ffff::` for /64).
    pub fn netmask(&self) -> Ipv6Addr {
        Ipv6Addr::from(mask128(self.prefix))
    }

    /// The network address.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & mask128(self.prefix))
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask128(self.prefix) == u128::from(self.network())
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An address with a prefix, of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpCidr {
    /// IPv4.
    V4(Ipv4Cidr),
    /// IPv6.
    V6(Ipv6Cidr),
}

impl IpCidr {
    /// The address part.
    pub fn addr(&self) -> IpAddr {
        match self {
            IpCidr::V4(c) => IpAddr::V4(c.addr),
            IpCidr::V6(c) => IpAddr::V6(c.addr),
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        match self {
            IpCidr::V4(c) => c.prefix,
            IpCidr::V6(c) => c.prefix,
        }
    }

    /// Whether this is an IPv6 prefix.
    pub fn is_v6(&self) -> bool {
        matches!(self, IpCidr::V6(_))
    }

    /// Whether this is a default route destination (prefix length 0).
    pub fn is_default(&self) -> bool {
        self.prefix() == 0
    }
}

impl FromStr for IpCidr {
    type Err = AddrError;

    /// Parses `ADDRESS/PREFIX` of either family.
    fn from_str(s: &str) -> Result<IpCidr, AddrError> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| AddrError::NoPrefix(s.to_string()))?;
        let addr: IpAddr = addr.parse().map_err(|_| AddrError::Ip(addr.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| AddrError::Prefix {
                prefix: prefix.to_string(),
                addr,
            })?;
        Ok(match addr {
            IpAddr::V4(addr) => IpCidr::V4(Ipv4Cidr { addr, prefix }),
            IpAddr::V6(addr) => IpCidr::V6(Ipv6Cidr { addr, prefix }),
        })
    }
}

impl FromStr for Ipv4Cidr {
    type Err = AddrError;

    /// Parses `a.b.c.d/PREFIX`.
    fn from_str(s: &str) -> Result<Ipv4Cidr, AddrError> {
        match s.parse::<IpCidr>()? {
            IpCidr::V4(c) => Ok(c),
            IpCidr::V6(_) => Err(AddrError::NotV4(s.to_string())),
        }
    }
}

impl FromStr for Ipv6Cidr {
    type Err = AddrError;

    /// Parses `ADDRESS/PREFIX` for IPv6.
    fn from_str(s: &str) -> Result<Ipv6Cidr, AddrError> {
        match s.parse::<IpCidr>()? {
            IpCidr::V6(c) => Ok(c),
            IpCidr::V4(_) => Err(AddrError::NotV6(s.to_string())),
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpCidr::V4(c) => c.fmt(f),
            IpCidr::V6(c) => c.fmt(f),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// A mask as the JSON gives it: a number or a string.
#[derive(Clone, Copy, Debug)]
pub enum MaskValue<'a> {
    /// A JSON number (`64`).
    Number(u64),
    /// A JSON string (`"255.255.255.0"`, `"24"`, `"ffff:ffff::"`).
    Text(&'a str),
}

impl fmt::Display for MaskValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskValue::Number(n) => write!(f, "{n}"),
            MaskValue::Text(s) => write!(f, "\"{s}\""),
        }
    }
}

/// An IPv4 prefix length from a dotted mask, a number, or a numeric string.
/// Non-contiguous masks are refused.
pub fn v4_prefix(mask: MaskValue<'_>) -> Result<u8, MaskError> {
    let bad = |problem| MaskError {
        mask: mask.to_string(),
        problem,
    };
    match mask {
        MaskValue::Number(n) if n <= 32 => Ok(n as u8),
        MaskValue::Number(_) => Err(bad(MaskProblem::AboveMax(32))),
        MaskValue::Text(s) => {
            let s = s.trim();
            if s.contains('.') {
                let m: Ipv4Addr = s.parse().map_err(|_| bad(MaskProblem::NotDotted))?;
                contiguous(u128::from(u32::from(m)) << 96).ok_or_else(|| bad(MaskProblem::NotContiguous))
            } else {
                match s.trim_start_matches('/').parse::<u8>() {
                    Ok(n) if n <= 32 => Ok(n),
                    Ok(_) => Err(bad(MaskProblem::AboveMax(32))),
                    Err(_) => Err(bad(MaskProblem::NotV4Mask)),
                }
            }
        }
    }
}

/// An IPv6 prefix length from a number, a numeric string, or a hex-colon
/// mask (`ffff:ffff:ffff:ffff::`). Non-contiguous masks are refused.
pub fn v6_prefix(mask: MaskValue<'_>) -> Result<u8, MaskError> {
    let bad = |problem| MaskError {
        mask: mask.to_string(),
        problem,
    };
    match mask {
        MaskValue::Number(n) if n <= 128 => Ok(n as u8),
        MaskValue::Number(_) => Err(bad(MaskProblem::AboveMax(128))),
        MaskValue::Text(s) => {
            let s = s.trim();
            if s.contains(':') {
                let m: Ipv6Addr = s.parse().map_err(|_| bad(MaskProblem::NotV6Mask))?;
                contiguous(u128::from(m)).ok_or_else(|| bad(MaskProblem::NotContiguous))
            } else {
                match s.trim_start_matches('/').parse::<u8>() {
                    Ok(n) if n <= 128 => Ok(n),
                    Ok(_) => Err(bad(MaskProblem::AboveMax(128))),
                    Err(_) => Err(bad(MaskProblem::NotPrefix)),
                }
            }
        }
    }
}

/// The prefix length of a left-aligned mask, or `None` if it has holes.
fn contiguous(mask: u128) -> Option<u8> {
    let ones = mask.leading_ones();
    (mask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Whether a gateway address is link-local (`fe80::/10`), so that it needs
/// no subnet of its own and some formats want a `%interface` scope.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// `ip` as a gateway is written for `nic`: an IPv6 link-local address with
/// its zone (`fe80::1%eth0`), anything else as it is.
pub fn scoped(ip: IpAddr, nic: &str) -> String {
    if ip.is_ipv6() && is_link_local(ip) {
        format!("{ip}%{nic}")
    } else {
        ip.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv6_link_local_gateways_get_a_zone() {
        assert_eq!(scoped("fe80::1".parse().unwrap(), "eth0"), "fe80::1%eth0");
        assert_eq!(scoped("2001:db8::1".parse().unwrap(), "eth0"), "2001:db8::1");
        assert_eq!(scoped("169.254.0.1".parse().unwrap(), "eth0"), "169.254.0.1");
    }

    #[test]
    fn cidrs_parse_and_give_masks() {
        assert!("10.0.0.1/33".parse::<IpCidr>().is_err());
        assert!("10.0.0.1".parse::<IpCidr>().is_err());
        assert_eq!("::1/128".parse::<IpCidr>().unwrap().prefix(), 128);
        let IpCidr::V6(c) = "2001:db8:9::/48".parse::<IpCidr>().unwrap() else {
            panic!("v6")
        };
        assert_eq!(c.netmask().to_string(), "ffff:ffff:ffff::");
    }

    #[test]
    fn macs_in_any_form() {
        let want = Mac([0xbc, 0x76, 0x4e, 0x20, 0x6c, 0x5b]);
        for s in [
            "BC:76:4E:20:6C:5B",
            "bc764e206c5b",
            "bc-76-4e-20-6c-5b",
            "bc76.4e20.6c5b",
        ] {
            assert_eq!(s.parse::<Mac>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "bc:76:4e:20:6c:5b");
        assert_eq!(want.upper(), "BC:76:4E:20:6C:5B");
        assert_eq!(want.plain(), "BC764E206C5B");
        assert!("bc:76:4e:20:6c".parse::<Mac>().is_err());
        assert!("zz:76:4e:20:6c:5b".parse::<Mac>().is_err());
        assert!("+c:76:4e:20:6c:5b".parse::<Mac>().is_err());
    }

    #[test]
    fn v4_masks() {
        assert_eq!(v4_prefix(MaskValue::Text("255.255.224.0")), Ok(19));
        assert_eq!(v4_prefix(MaskValue::Text("24")), Ok(24));
        assert_eq!(v4_prefix(MaskValue::Text("/24")), Ok(24));
        assert_eq!(v4_prefix(MaskValue::Number(32)), Ok(32));
        assert_eq!(v4_prefix(MaskValue::Text("0.0.0.0")), Ok(0));
        assert_eq!(
            v4_prefix(MaskValue::Text("255.0.255.0")).unwrap_err().to_string(),
            "netmask \"255.0.255.0\" is not contiguous"
        );
        assert!(v4_prefix(MaskValue::Number(33)).is_err());
        assert!(v4_prefix(MaskValue::Text("33")).is_err());
        assert!(v4_prefix(MaskValue::Text("abc")).is_err());
    }

    #[test]
    fn v6_masks() {
        assert_eq!(v6_prefix(MaskValue::Number(64)), Ok(64));
        assert_eq!(v6_prefix(MaskValue::Text("64")), Ok(64));
        assert_eq!(v6_prefix(MaskValue::Text("ffff:ffff:ffff:ffff::")), Ok(64));
        assert_eq!(
            v6_prefix(MaskValue::Text("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Ok(128)
        );
        assert!(v6_prefix(MaskValue::Text("ffff::ffff")).is_err());
        assert!(v6_prefix(MaskValue::Number(129)).is_err());
    }

    #[test]
    fn subnets() {
        let c = Ipv4Cidr {
            addr: "10.208.227.239".parse().unwrap(),
            prefix: 19,
        };
        assert_eq!(c.network(), "10.208.224.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(c.netmask(), "255.255.224.0".parse::<Ipv4Addr>().unwrap());
        assert!(c.contains("10.208.224.1".parse().unwrap()));
        assert!(!c.contains("10.208.0.1".parse().unwrap()));
        let c6 = Ipv6Cidr {
            addr: "2001:db8:0:1::5".parse().unwrap(),
            prefix: 64,
        };
        assert!(c6.contains("2001:db8:0:1::1".parse().unwrap()));
        assert!(!c6.contains("2001:db8:0:2::1".parse().unwrap()));
        assert!(is_link_local("fe80::def".parse().unwrap()));
        assert!(!is_link_local("2001:db8::1".parse().unwrap()));
    }
}
