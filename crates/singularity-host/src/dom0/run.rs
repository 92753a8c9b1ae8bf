//! `singularity-host COMMAND`: turn the command line into host-side calls and print
//! the agent's reply.

use super::commands::NicSpec;
use super::{AgentHost, AgentReply, DEFAULT_TIMEOUT};
use crate::cli::{HostCommand, Md, SetNetworkArgs, Target};
use serde_json::Value;
use singularity::crypto::cipher::Digest;
use singularity::network::addr::{IpCidr, Ipv4Cidr, Ipv6Cidr, Mac};
use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;
use xenstore::Client;

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(buf)
}

fn nic(args: &SetNetworkArgs) -> Result<NicSpec, String> {
    let ip = args
        .ip
        .as_deref()
        .map(str::parse::<Ipv4Cidr>)
        .transpose()
        .map_err(|e| format!("--ip: {e}"))?;
    let ip6 = args
        .ip6
        .as_deref()
        .map(str::parse::<Ipv6Cidr>)
        .transpose()
        .map_err(|e| format!("--ip6: {e}"))?;
    let parse_ip = |s: &str| s.parse::<IpAddr>().map_err(|_| format!("'{s}' is not an IP address"));
    let gateway = match &args.gateway {
        Some(s) => match parse_ip(s)? {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => return Err(format!("--gateway {s} is not IPv4")),
        },
        None => None,
    };
    let gateway6 = match &args.gateway6 {
        Some(s) => match parse_ip(s)? {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => return Err(format!("--gateway6 {s} is not IPv6")),
        },
        None => None,
    };
    let dns = args.dns.iter().map(|d| parse_ip(d)).collect::<Result<Vec<_>, _>>()?;
    let routes = args
        .route
        .iter()
        .map(|r| {
            let (dest, via) = r
                .split_once(',')
                .ok_or_else(|| format!("--route {r}: expected CIDR,VIA"))?;
            Ok((dest.parse::<IpCidr>().map_err(|e| e.to_string())?, parse_ip(via)?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    args.mac
        .parse::<Mac>()
        .map_err(|_| format!("--mac {} is not a MAC address", args.mac))?;
    Ok(NicSpec {
        mac: args.mac.replace('-', ":"),
        label: args.label.clone(),
        ip,
        gateway,
        ip6,
        gateway6,
        dns,
        routes,
    })
}

fn print_reply(reply: &AgentReply, json: bool, success: &[&str]) -> ExitCode {
    if json {
        println!("{}", reply.raw);
    }
    if success.contains(&reply.returncode.as_str()) {
        if !json {
            println!("{}", reply.message);
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("agent returned {}: {}", reply.returncode, reply.message);
        ExitCode::FAILURE
    }
}

/// Runs one host command.
pub fn run(args: &Target, command: &HostCommand) -> Result<ExitCode, String> {
    let domid = args
        .domid
        .ok_or("agent commands need --domid N, the guest's domain id")?;
    let client = match &args.xenstore {
        Some(path) => Client::connect(path),
        None => Client::open(),
    }
    .map_err(|e| format!("cannot connect to xenstore: {e}"))?;
    let host = AgentHost::new(client, domid);
    let timeout = args.timeout.map(Duration::from_secs);
    let t = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let err = |e: super::HostError| e.to_string();
    match command {
        HostCommand::Version => Ok(print_reply(&host.version(t).map_err(err)?, args.json, &["0"])),
        HostCommand::Features => Ok(print_reply(&host.features().map_err(err)?.0, args.json, &["0"])),
        HostCommand::Password { md, password } => {
            let plain = match password.as_deref() {
                Some("-") | None => {
                    let raw = read_stdin()?;
                    let text = String::from_utf8(raw).map_err(|_| "password is not UTF-8".to_string())?;
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
                Some(p) => p.to_string(),
            };
            let digest = match md {
                Md::Md5 => Digest::Md5,
                Md::Sha256 => Digest::Sha256,
            };
            Ok(print_reply(
                &host.password(&plain, digest, t).map_err(err)?,
                args.json,
                &["0"],
            ))
        }
        HostCommand::Inject { path, file } => {
            let contents = match file {
                Some(p) if p.as_os_str() != "-" => {
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
                }
                _ => read_stdin()?,
            };
            Ok(print_reply(
                &host.inject(path, &contents, t).map_err(err)?,
                args.json,
                &["0"],
            ))
        }
        HostCommand::Resetnetwork => Ok(print_reply(
            &host.resetnetwork(timeout).map_err(err)?,
            args.json,
            &["0", "500"],
        )),
        HostCommand::Agentupdate { url, md5 } => Ok(print_reply(
            &host.agentupdate(url, md5, t).map_err(err)?,
            args.json,
            &["0"],
        )),
        HostCommand::SetNetwork(n) => {
            host.set_network(&nic(n)?).map_err(err)?;
            Ok(ExitCode::SUCCESS)
        }
        HostCommand::SetHostname { name } => {
            host.set_hostname(name).map_err(err)?;
            Ok(ExitCode::SUCCESS)
        }
        HostCommand::Raw { name, value } => {
            let reply = host.call(name, Value::String(value.clone()), t).map_err(err)?;
            Ok(print_reply(&reply, args.json, &["0", "D0"]))
        }
    }
}
