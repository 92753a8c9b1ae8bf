//! Parsing leniency and every error case of [`super::vmdata`], and the
//! planning errors that name their entry (nothing planned).

use super::addr::{IpCidr, Ipv4Cidr, Ipv6Cidr, Mac};
use super::vmdata::{parse_entry, parse_hostname, Route};
use super::NetError;
use std::net::IpAddr;

/// nova's own unit-test value (protocol.md §4.3).
const NOVA: &str = r#"{"broadcast": "192.168.1.255", "dns": ["192.168.1.4", "192.168.1.3"],
 "gateway": "192.168.1.1", "gateway_v6": "2001:db8:0:1::1",
 "ip6s": [{"enabled": "1", "ip": "2001:db8:0:1:dcad:beff:feef:1", "netmask": 64, "gateway": "2001:db8:0:1::1"}],
 "ips": [{"enabled": "1", "ip": "192.168.1.100", "netmask": "255.255.255.0", "gateway": "192.168.1.1"}],
 "label": "test1", "mac": "DE:AD:BE:EF:00:01"}"#;

fn entry(json: &str) -> Result<super::vmdata::NicData, NetError> {
    parse_entry("DEADBEEF0001", json.as_bytes())
}

fn err(json: &str) -> String {
    let e = entry(json).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("vm-data/networking/DEADBEEF0001: "), "{text}");
    text
}

#[test]
fn nova_example() {
    let d = entry(NOVA).unwrap();
    assert_eq!(d.mac, Mac([0xde, 0xad, 0xbe, 0xef, 0, 1]));
    assert_eq!(d.label.as_deref(), Some("test1"));
    assert_eq!(
        d.ipv4,
        vec![Ipv4Cidr {
            addr: "192.168.1.100".parse().unwrap(),
            prefix: 24
        }]
    );
    assert_eq!(d.gateway4, Some("192.168.1.1".parse().unwrap()));
    assert_eq!(
        d.ipv6,
        vec![Ipv6Cidr {
            addr: "2001:db8:0:1:dcad:beff:feef:1".parse().unwrap(),
            prefix: 64
        }]
    );
    assert_eq!(d.gateway6, Some("2001:db8:0:1::1".parse().unwrap()));
    let dns: Vec<IpAddr> = vec!["192.168.1.4".parse().unwrap(), "192.168.1.3".parse().unwrap()];
    assert_eq!(d.dns, dns);
}

#[test]
fn masks_in_every_form() {
    for mask in [r#""255.255.255.0""#, "24", r#""24""#] {
        let d = entry(&format!(
            r#"{{"mac":"de:ad:be:ef:00:01","ips":[{{"ip":"10.0.0.2","netmask":{mask}}}]}}"#
        ))
        .unwrap();
        assert_eq!(d.ipv4[0].prefix, 24, "{mask}");
    }
    for mask in ["64", r#""64""#, r#""ffff:ffff:ffff:ffff::""#] {
        let d = entry(&format!(r#"{{"ip6s":[{{"ip":"2001:db8::2","netmask":{mask}}}]}}"#)).unwrap();
        assert_eq!(d.ipv6[0].prefix, 64, "{mask}");
    }
}

#[test]
fn enabled_forms() {
    let d = entry(
        r#"{"ips":[{"ip":"10.0.0.2","netmask":24,"enabled":"1"},{"ip":"10.0.0.3","netmask":24,"enabled":1},
        {"ip":"10.0.0.4","netmask":24,"enabled":"0"},{"ip":"10.0.0.5","netmask":24,"enabled":0},
        {"ip":"10.0.0.6","netmask":24}]}"#,
    )
    .unwrap();
    let got: Vec<String> = d.ipv4.iter().map(|c| c.addr.to_string()).collect();
    assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.6"]);
}

#[test]
fn ipv6_gateway_precedence() {
    let base = r#""ip6s":[{"ip":"2001:db8::2","netmask":64,"gateway":"fe80::3"}]"#;
    let gw = |extra: &str| {
        entry(&format!("{{{base}{extra}}}"))
            .unwrap()
            .gateway6
            .map(|g| g.to_string())
    };
    assert_eq!(
        gw(r#","gateway_v6":"fe80::1","gateway6":"fe80::2""#).as_deref(),
        Some("fe80::1")
    );
    assert_eq!(
        gw(r#","gateway_v6":null,"gateway6":"fe80::2""#).as_deref(),
        Some("fe80::2")
    );
    assert_eq!(gw("").as_deref(), Some("fe80::3"));
    let none = entry(r#"{"ip6s":[{"ip":"2001:db8::2","netmask":64,"gateway":null}],"gateway_v6":null}"#).unwrap();
    assert_eq!(none.gateway6, None);
}

#[test]
fn null_gateways_and_rackspace_private() {
    let d = entry(
        r#"{"label": "private", "broadcast": "10.208.255.255",
        "ips": [{"ip": "10.208.227.239", "netmask": "255.255.224.0", "enabled": "1", "gateway": null}],
        "mac": "BC:76:4E:20:6C:5B",
        "routes": [{"route": "10.208.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"},
                   {"route": "10.176.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"},
                   {"route": "10.176.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"}],
        "gateway": null}"#,
    )
    .unwrap();
    assert_eq!(d.gateway4, None);
    assert_eq!(d.routes.len(), 2, "duplicates dropped");
    assert_eq!(d.routes[1].dest.to_string(), "10.176.0.0/12");
}

#[test]
fn ipv6_routes_with_hex_masks_and_default_routes() {
    let d = entry(
        r#"{"ip6s":[{"ip":"2001:db8:1::2","netmask":64}],
        "routes":[{"route":"2001:db8:99::","netmask":"ffff:ffff:ffff::","gateway":"2001:db8:1::1"},
                  {"route":"::","netmask":"0","gateway":"fe80::1"},
                  {"route":"10.9.0.0","netmask":16,"gateway":null}],
        "ips":[{"ip":"10.0.0.2","netmask":"255.255.255.0"}]}"#,
    )
    .unwrap();
    let r6 = Route {
        dest: IpCidr::V6(Ipv6Cidr {
            addr: "2001:db8:99::".parse().unwrap(),
            prefix: 48,
        }),
        gateway: Some("2001:db8:1::1".parse().unwrap()),
    };
    assert_eq!(d.routes[0], r6);
    assert_eq!(
        d.gateway6,
        Some("fe80::1".parse().unwrap()),
        "a ::/0 route is the gateway"
    );
    assert_eq!(d.routes[1].gateway, None);
}

#[test]
fn macs_match_in_any_case_and_fall_back_to_the_key() {
    let lower = parse_entry(
        "x",
        br#"{"mac":"bc:76:4e:20:6c:5b","ips":[{"ip":"10.0.0.2","netmask":8}]}"#,
    )
    .unwrap();
    let upper = parse_entry("x", br#"{"mac":"BC764E206C5B","ips":[{"ip":"10.0.0.2","netmask":8}]}"#).unwrap();
    assert_eq!(lower.mac, upper.mac);
    let keyed = parse_entry("bc764e206c5b", br#"{"ips":[{"ip":"10.0.0.2","netmask":8}]}"#).unwrap();
    assert_eq!(keyed.mac, upper.mac);
}

#[test]
fn dns_keeps_order_and_drops_duplicates() {
    let d = entry(r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"dns":["10.0.0.9","2001:db8::53","10.0.0.9"]}"#).unwrap();
    assert_eq!(d.dns.len(), 2);
    assert_eq!(d.dns[0].to_string(), "10.0.0.9");
}

#[test]
fn labels_are_made_safe_for_comments() {
    let d = entry(r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"label":"pub\nauto eth9 \"x\""}"#).unwrap();
    assert_eq!(d.label.as_deref(), Some("pub_auto_eth9__x_"));
}

#[test]
fn every_entry_error_names_the_entry() {
    let cases: &[(&str, &str)] = &[
        ("", "empty entry"),
        ("  \n", "empty entry"),
        ("{}", "empty entry"),
        ("[1]", "not a JSON object"),
        ("{bad", "not valid JSON"),
        (r#"{"mac":"DE:AD"}"#, "mac: 'DE:AD' is not a MAC"),
        (r#"{"label":"x"}"#, "neither ips nor ip6s"),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":24,"enabled":"0"}]}"#,
            "no enabled address",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.256","netmask":24}]}"#,
            "ips[0].ip: '10.0.0.256' is not a valid address",
        ),
        (r#"{"ips":[{"ip":"10.0.0.2"}]}"#, "ips[0].netmask: missing"),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":"255.0.255.0"}]}"#,
            "not contiguous",
        ),
        (r#"{"ips":[{"ip":"10.0.0.2","netmask":33}]}"#, "above 32"),
        (r#"{"ips":[{"ip":"10.0.0.2","netmask":0}]}"#, "prefix length of 0"),
        (r#"{"ips":[{"ip":"0.0.0.0","netmask":8}]}"#, "not a host address"),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8,"enabled":"yes"}]}"#,
            "ips[0].enabled",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8},{"ip":"10.0.0.2","netmask":16}]}"#,
            "another prefix length",
        ),
        (r#"{"ips":"10.0.0.2"}"#, "ips: expected a list"),
        (r#"{"ip6s":[{"ip":"2001:db8::g","netmask":64}]}"#, "ip6s[0].ip"),
        (r#"{"ip6s":[{"ip":"2001:db8::2","netmask":129}]}"#, "above 128"),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"gateway":"10.0.0.300"}"#,
            "gateway: '10.0.0.300'",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"gateway":"10.0.0.2"}"#,
            "NIC's own addresses",
        ),
        (
            r#"{"ip6s":[{"ip":"2001:db8::2","netmask":64}],"gateway":"10.0.0.1"}"#,
            "no enabled address of that family",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"gateway_v6":"fe80::1"}"#,
            "no enabled address of that family",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"gateway_v6":"10.0.0.1"}"#,
            "gateway_v6",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"routes":[{"route":"10.1.0.0","gateway":"10.0.0.1"}]}"#,
            "routes[0]: netmask: missing",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"routes":[{"route":"10.1.2.0","netmask":16,"gateway":"10.0.0.1"}]}"#,
            "host bits set",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"routes":[{"route":"10.1.0.0","netmask":16,"gateway":"fe80::1"}]}"#,
            "same family",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"gateway":"10.0.0.1","routes":[{"route":"0.0.0.0","netmask":0,"gateway":"10.0.0.9"}]}"#,
            "a second default route",
        ),
        (
            r#"{"ips":[{"ip":"10.0.0.2","netmask":8}],"dns":["dns.example.com"]}"#,
            "dns[0]",
        ),
    ];
    for (json, want) in cases {
        let text = err(json);
        assert!(text.contains(want), "{json}: {text} (wanted {want})");
    }
    let no_mac = parse_entry("not-a-mac", br#"{"ips":[{"ip":"10.0.0.2","netmask":8}]}"#).unwrap_err();
    assert!(
        no_mac
            .to_string()
            .contains("vm-data/networking/not-a-mac: no mac field"),
        "{no_mac}"
    );
}

#[test]
fn hostnames() {
    assert_eq!(parse_hostname(b"test-server\n").unwrap(), "test-server");
    assert_eq!(parse_hostname(b"  web.example.com. ").unwrap(), "web.example.com");
    assert_eq!(parse_hostname(b"\"RESCUE-web\"").unwrap(), "RESCUE-web");
    let long_label = "a".repeat(64);
    let too_long = vec!["abcdefghi"; 26].join(".");
    let bad: Vec<(&[u8], &str)> = vec![
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"web_1", "may only contain"),
        (b"-web", "hyphen"),
        (b"web-", "hyphen"),
        (b"a..b", "empty label"),
        (b"a b", "may only contain"),
        (b"\xff\xfe", "UTF-8"),
        (long_label.as_bytes(), "63"),
        (too_long.as_bytes(), "253"),
    ];
    for (raw, want) in bad {
        let e = parse_hostname(raw).unwrap_err().to_string();
        assert!(e.starts_with("vm-data/hostname ") && e.contains(want), "{raw:?}: {e}");
    }
    assert_eq!(parse_hostname("a".repeat(63).as_bytes()).unwrap().len(), 63);
}

#[test]
fn the_nics_own_address_is_no_next_hop_for_a_route_or_the_default() {
    let route = err(r#"{"mac": "DE:AD:BE:EF:00:01",
        "ips": [{"ip": "10.0.0.5", "netmask": "255.255.255.0"}],
        "routes": [{"route": "10.176.0.0", "netmask": "255.240.0.0", "gateway": "10.0.0.5"}]}"#);
    assert!(
        route.ends_with("route 10.176.0.0/12 via 10.0.0.5: the gateway is one of the NIC's own addresses"),
        "{route}"
    );
    let gateway = err(r#"{"mac": "DE:AD:BE:EF:00:01",
        "ips": [{"ip": "10.0.0.5", "netmask": "255.255.255.0"}], "gateway": "10.0.0.5"}"#);
    assert!(gateway.contains("is one of the NIC's own addresses"), "{gateway}");
}
