//! rtnetlink, through plain netlink sockets: a dump of every interface address
//! (`RTM_GETADDR`), and a socket subscribed to address and link changes
//! whose messages only say "look again". Nothing here changes the system.

use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

const NLMSG_HDRLEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTA_HDRLEN: usize = 4;

/// One interface address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IfAddr {
    /// The interface index.
    pub index: u32,
    pub addr: IpAddr,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A route netlink socket bound to `groups` (0: none, for dumps).
fn open(groups: u32) -> io::Result<OwnedFd> {
    // No protocol: NETLINK_ROUTE is netlink's default (0).
    let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)?;
    // Port id 0: the kernel assigns one.
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, groups))?;
    Ok(fd)
}

/// Receives one datagram into `buf`, with `flags`.
fn recv(fd: &OwnedFd, buf: &mut [u8], flags: RecvFlags) -> Result<usize, Errno> {
    loop {
        match rustix::net::recv(fd, &mut *buf, flags) {
            Ok((n, _)) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Every address of every interface, from an `RTM_GETADDR` dump.
pub fn dump() -> io::Result<Vec<IfAddr>> {
    let fd = open(0)?;
    let mut req = [0u8; NLMSG_HDRLEN + IFADDRMSG_LEN];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&libc::RTM_GETADDR.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // ifaddrmsg: family AF_UNSPEC (both), the rest zero.
    rustix::net::send(&fd, &req, SendFlags::empty())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(&fd, &mut buf, RecvFlags::empty())?;
        if n == 0 {
            return Ok(out);
        }
        if parse(&buf[..n], &mut out)? {
            return Ok(out);
        }
    }
}

/// Parses one datagram of a dump into `out`; `true` at `NLMSG_DONE`.
fn parse(mut data: &[u8], out: &mut Vec<IfAddr>) -> io::Result<bool> {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
        }
        let kind = u16_at(data, 4);
        let msg = &data[NLMSG_HDRLEN..len];
        if kind == libc::NLMSG_DONE as u16 {
            return Ok(true);
        }
        if kind == libc::NLMSG_ERROR as u16 {
            let errno = if msg.len() >= 4 {
                -(u32_at(msg, 0) as i32)
            } else {
                libc::EIO
            };
            return Err(io::Error::from_raw_os_error(errno));
        }
        if kind == libc::RTM_NEWADDR && msg.len() >= IFADDRMSG_LEN {
            if let Some(a) = address(msg) {
                out.push(a);
            }
        }
        data = &data[align4(len).min(data.len())..];
    }
    Ok(false)
}

/// The address of one `RTM_NEWADDR` payload (ifaddrmsg and attributes):
/// `IFA_LOCAL` for IPv4 (on point-to-point links `IFA_ADDRESS` is the peer),
/// `IFA_ADDRESS` otherwise.
fn address(msg: &[u8]) -> Option<IfAddr> {
    let family = i32::from(msg[0]);
    let index = u32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let (mut local, mut address) = (None, None);
    let mut attrs = &msg[IFADDRMSG_LEN..];
    while attrs.len() >= RTA_HDRLEN {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < RTA_HDRLEN || len > attrs.len() {
            break;
        }
        let value = &attrs[RTA_HDRLEN..len];
        let ip = match (family, value.len()) {
            (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3]))),
            (libc::AF_INET6, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(value);
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        };
        match kind {
            libc::IFA_LOCAL => local = ip,
            libc::IFA_ADDRESS => address = ip,
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    let addr = if family == libc::AF_INET {
        local.or(address)
    } else {
        address.or(local)
    }?;
    Some(IfAddr { index, addr })
}

/// A socket told about every address and link change.
pub struct Changes(OwnedFd);

impl Changes {
    /// Subscribes to `RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_LINK`.
    pub fn subscribe() -> io::Result<Changes> {
        let groups = (libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR | libc::RTMGRP_LINK) as u32;
        open(groups).map(Changes)
    }

    /// Blocks until at least one change message arrived, then takes every
    /// message already queued, and says what kind of changes they were. A
    /// lost message (`ENOBUFS`: the queue overflowed) counts as both kinds:
    /// the caller looks at everything again.
    pub fn wait(&self) -> io::Result<Kinds> {
        let mut kinds = Kinds::default();
        let mut buf = vec![0u8; 16 * 1024];
        match recv(&self.0, &mut buf, RecvFlags::empty()) {
            Ok(n) => kinds.add(&buf[..n]),
            Err(Errno::NOBUFS) => kinds = Kinds { link: true, addr: true },
            Err(e) => return Err(e.into()),
        }
        loop {
            match recv(&self.0, &mut buf, RecvFlags::DONTWAIT) {
                Ok(n) => kinds.add(&buf[..n]),
                Err(Errno::NOBUFS) => kinds = Kinds { link: true, addr: true },
                Err(_) => return Ok(kinds),
            }
        }
    }
}

/// What changed, as far as a batch of messages tells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    /// An interface appeared, went or changed (`RTM_NEWLINK`, `RTM_DELLINK`).
    pub link: bool,
    /// An address was added or removed.
    pub addr: bool,
}

impl Kinds {
    fn add(&mut self, mut data: &[u8]) {
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            match u16::from_ne_bytes([data[4], data[5]]) {
                libc::RTM_NEWLINK | libc::RTM_DELLINK => self.link = true,
                libc::RTM_NEWADDR | libc::RTM_DELADDR => self.addr = true,
                _ => {}
            }
            if len < NLMSG_HDRLEN {
                return;
            }
            data = &data[align4(len).min(data.len())..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((RTA_HDRLEN + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend(kind.to_ne_bytes());
        a.extend(value);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn parses_ipv4_local_and_ipv6_address() {
        let mut v4 = vec![libc::AF_INET as u8, 32, 0, 0];
        v4.extend(3u32.to_ne_bytes());
        v4.extend(attr(libc::IFA_ADDRESS, &[10, 0, 0, 9]));
        v4.extend(attr(libc::IFA_LOCAL, &[10, 0, 0, 4]));
        let mut v6 = vec![libc::AF_INET6 as u8, 64, 0, 0];
        v6.extend(3u32.to_ne_bytes());
        v6.extend(attr(
            libc::IFA_ADDRESS,
            &"fe80::1".parse::<Ipv6Addr>().unwrap().octets(),
        ));
        let mut data = msg(libc::RTM_NEWADDR, &v4);
        data.extend(msg(libc::RTM_NEWADDR, &v6));
        let mut out = Vec::new();
        assert!(!parse(&data, &mut out).unwrap());
        assert_eq!(
            out,
            [
                IfAddr {
                    index: 3,
                    addr: "10.0.0.4".parse().unwrap()
                },
                IfAddr {
                    index: 3,
                    addr: "fe80::1".parse().unwrap()
                },
            ]
        );
        assert!(parse(&msg(libc::NLMSG_DONE as u16, &[0; 4]), &mut out).unwrap());
        assert!(
            parse(&msg(1, &[0; 2])[..10], &mut out).is_ok(),
            "a short tail is ignored"
        );
    }

    #[test]
    fn the_dump_lists_loopback() {
        let all = dump().unwrap();
        assert!(all.iter().any(|a| a.addr.is_loopback()), "{all:?}");
    }
}
