//! The host-side commands, each doing what nova plus the dom0 plugin do: the
//! key exchange and password encryption of nova's `SimpleDH`, the
//! `features`-driven choice of injection form, and nova's `vm-data` writes.

use super::{pyjson, AgentHost, AgentReply, HostError, DEFAULT_TIMEOUT, RESETNETWORK_TIMEOUT};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use singularity::crypto::cipher::{encrypt_password, Digest};
use singularity::crypto::dh::{KeyPair, PeerKey};
use singularity::network::addr::{IpCidr, Ipv4Cidr, Ipv6Cidr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

impl AgentHost {
    /// `version`, as nova sends it.
    pub fn version(&self, timeout: Duration) -> Result<AgentReply, HostError> {
        self.call("version", json!("agent"), timeout)
    }

    /// `features`, split the way the plugin splits it (always, as the
    /// returncode is a string and so never equals the integer 0).
    pub fn features(&self) -> Result<(AgentReply, Vec<String>), HostError> {
        let reply = self.call("features", json!(""), DEFAULT_TIMEOUT)?;
        let list = reply.message.split(',').map(String::from).collect();
        Ok((reply, list))
    }

    /// `keyinit` then `password`: the DH exchange and the password encrypted as
    /// `openssl aes-128-cbc -nosalt -pass pass:<shared>` does with `digest`.
    /// Returns the keyinit reply when it fails, else the password reply.
    pub fn password(&self, password: &str, digest: Digest, timeout: Duration) -> Result<AgentReply, HostError> {
        let pair = KeyPair::generate().map_err(|e| HostError::Other(format!("random source: {e}")))?;
        let keyinit = self.call("keyinit", Value::String(pair.public_key().to_string()), timeout)?;
        if keyinit.returncode != "D0" {
            return Ok(keyinit);
        }
        let peer = PeerKey::parse(&keyinit.message)
            .map_err(|e| HostError::BadReply(format!("keyinit message is not a public key: {e}")))?;
        let shared = pair.shared_secret(peer);
        let ciphertext = encrypt_password(&shared, &format!("{password}\n"), digest);
        self.call("password", Value::String(ciphertext), timeout)
    }

    /// Injects a file, choosing the form from `features` exactly as the plugin
    /// does: `file_inject` if offered, else `injectfile`, else NOT IMPLEMENTED.
    pub fn inject(&self, path: &str, contents: &[u8], timeout: Duration) -> Result<AgentReply, HostError> {
        let (_, features) = self.features()?;
        if features.iter().any(|f| f == "file_inject") {
            let value = json!({"b64_path": STANDARD.encode(path), "b64_file": STANDARD.encode(contents)});
            self.call("file_inject", value, timeout)
        } else if features.iter().any(|f| f == "injectfile") {
            let mut joined = path.as_bytes().to_vec();
            joined.push(b',');
            joined.extend_from_slice(contents);
            self.call("injectfile", Value::String(STANDARD.encode(joined)), timeout)
        } else {
            Err(HostError::Other(
                "NOT IMPLEMENTED: Agent does not support file injection.".into(),
            ))
        }
    }

    /// `resetnetwork`, with nova's 60-second timeout unless told otherwise.
    pub fn resetnetwork(&self, timeout: Option<Duration>) -> Result<AgentReply, HostError> {
        self.call("resetnetwork", json!(""), timeout.unwrap_or(RESETNETWORK_TIMEOUT))
    }

    /// `agentupdate` with nova's `url,md5` value.
    pub fn agentupdate(&self, url: &str, md5: &str, timeout: Duration) -> Result<AgentReply, HostError> {
        self.call("agentupdate", Value::String(format!("{url},{md5}")), timeout)
    }

    /// Writes `vm-data/networking/<MAC without colons>` as nova does.
    pub fn set_network(&self, nic: &NicSpec) -> Result<(), HostError> {
        let key = nic.mac.replace(':', "");
        let path = format!("/local/domain/{}/vm-data/networking/{key}", self.domid());
        self.client().write(&path, pyjson::dumps(&nic.to_json()))?;
        Ok(())
    }

    /// Writes `vm-data/hostname` (a raw string, not JSON).
    pub fn set_hostname(&self, name: &str) -> Result<(), HostError> {
        let path = format!("/local/domain/{}/vm-data/hostname", self.domid());
        self.client().write(&path, name)?;
        Ok(())
    }
}

/// One NIC's network data, as `singularity-host set-network` takes it.
#[derive(Debug, Clone, Default)]
pub struct NicSpec {
    /// MAC address with colons.
    pub mac: String,
    /// Network label.
    pub label: String,
    /// IPv4 address and prefix length.
    pub ip: Option<Ipv4Cidr>,
    /// IPv4 gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 address and prefix length.
    pub ip6: Option<Ipv6Cidr>,
    /// IPv6 gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
    /// Static routes: destination and next hop.
    pub routes: Vec<(IpCidr, IpAddr)>,
}

impl NicSpec {
    /// The JSON object nova's `_vif_xenstore_data` builds.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("label".into(), json!(self.label));
        m.insert("mac".into(), json!(self.mac));
        if let Some(ip) = self.ip {
            let (addr, mask) = (ip.addr, ip.netmask());
            let broadcast = Ipv4Addr::from(u32::from(addr) | !u32::from(mask));
            let gw = self.gateway.map(|g| json!(g.to_string())).unwrap_or(Value::Null);
            m.insert("broadcast".into(), json!(broadcast.to_string()));
            m.insert("gateway".into(), gw.clone());
            m.insert(
                "ips".into(),
                json!([{"ip": addr.to_string(), "enabled": "1", "netmask": mask.to_string(), "gateway": gw}]),
            );
        }
        if let Some(ip6) = self.ip6 {
            let gw = self.gateway6.map(|g| json!(g.to_string())).unwrap_or(Value::Null);
            m.insert("gateway_v6".into(), gw.clone());
            m.insert(
                "ip6s".into(),
                json!([{"ip": ip6.addr.to_string(), "enabled": "1", "netmask": ip6.prefix, "gateway": gw}]),
            );
        }
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|(dest, via)| {
                    let (network, mask) = match dest {
                        IpCidr::V4(c) => (c.network().to_string(), c.netmask().to_string()),
                        IpCidr::V6(c) => (c.network().to_string(), c.netmask().to_string()),
                    };
                    json!({"route": network, "netmask": mask, "gateway": via.to_string()})
                })
                .collect();
            m.insert("routes".into(), Value::Array(routes));
        }
        if !self.dns.is_empty() {
            m.insert(
                "dns".into(),
                json!(self.dns.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_novas_vif_data() {
        let nic = NicSpec {
            mac: "DE:AD:BE:EF:00:01".into(),
            label: "test1".into(),
            ip: Some(Ipv4Cidr {
                addr: "192.168.1.100".parse().unwrap(),
                prefix: 24,
            }),
            gateway: Some("192.168.1.1".parse().unwrap()),
            ip6: Some(Ipv6Cidr {
                addr: "2001:db8:0:1:dcad:beff:feef:1".parse().unwrap(),
                prefix: 64,
            }),
            gateway6: Some("2001:db8:0:1::1".parse().unwrap()),
            dns: vec!["192.168.1.4".parse().unwrap()],
            routes: vec![("2001:db8:9::/48".parse().unwrap(), "2001:db8:0:1::9".parse().unwrap())],
        };
        let v = nic.to_json();
        assert_eq!(v["broadcast"], "192.168.1.255");
        assert_eq!(v["ips"][0]["netmask"], "255.255.255.0");
        assert_eq!(v["ip6s"][0]["netmask"], 64);
        assert_eq!(v["gateway_v6"], "2001:db8:0:1::1");
        assert_eq!(v["routes"][0]["netmask"], "ffff:ffff:ffff::");
        assert_eq!(v["routes"][0]["route"], "2001:db8:9::");
        assert!(pyjson::dumps(&v).starts_with(r#"{"broadcast": "192.168.1.255", "dns": ["#));
    }
}
