//! The bandwidth engine: an `htb` qdisc per interface, with a shaped class for the selection and a free one
//! for the rest and for the control plane; ingress goes through an `ifb` device (`ingress` qdisc + `mirred`
//! redirect) and is shaped there. The kernel here has `htb`, `tbf`, `u32`, `ingress`, `ifb` and `mirred`, but
//! no `fw`, `flower` or `matchall`, so every match is a `u32` one.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::CommandError;

use super::tools;
use super::traffic::{Protocol, Selection};

/// The rate of the class everything not shaped goes through: far above any link here.
const FREE_RATE: &str = "100gbit";

/// A rate in bits per second, written `500kbit`, `10mbit`, `1gbit` (or with `/s`); `mbps` is refused, as
/// tc reads it as megabytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(into = "String")]
#[schemars(with = "String")]
pub struct Rate(pub u64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix("/s").unwrap_or(&lower);
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let number: f64 = number.parse().map_err(|_| format!("`{text}` is no rate: write 500kbit, 10mbit or 1gbit"))?;
        let scale = match unit.trim() {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => return Err(format!("`{text}`: the unit must be bit, kbit, mbit or gbit (bits per second)")),
        };
        let bits = number * scale;
        if !(8_000.0..=100e9).contains(&bits) {
            return Err(format!("`{text}` is outside 8kbit..100gbit"));
        }
        Ok(Rate(bits as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            bits if bits % 1_000_000_000 == 0 => write!(f, "{}gbit", bits / 1_000_000_000),
            bits if bits % 1_000_000 == 0 => write!(f, "{}mbit", bits / 1_000_000),
            bits if bits % 1_000 == 0 => write!(f, "{}kbit", bits / 1_000),
            bits => write!(f, "{bits}bit"),
        }
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        rate.to_string()
    }
}

/// The qdisc handle of an agent's shaping: its public port (unique in the namespace), `major:` in hex.
pub fn handle(public_port: u16) -> u16 {
    public_port.clamp(1, 0xfffe)
}

/// The `ifb` device an agent shapes ingress on.
pub fn ifb_name(public_port: u16) -> String {
    format!("tfb{public_port}")
}

/// What was installed, to undo exactly that.
#[derive(Debug, Default)]
pub struct Shaped {
    handle: u16,
    /// Interfaces whose root qdisc this fault set.
    egress: Vec<String>,
    /// Interfaces whose ingress goes to the ifb, and whether the ingress qdisc was made here.
    ingress: Vec<(String, bool)>,
    ifb: Option<String>,
}

/// Shapes the selection's traffic on `interfaces` to `rate`, egress and/or ingress.
pub fn install(
    public_port: u16,
    interfaces: &[String],
    selection: &Selection,
    rate: Rate,
) -> Result<Shaped, CommandError> {
    let handle = handle(public_port);
    let mut shaped = Shaped { handle, ..Shaped::default() };
    let result = (|| {
        if selection.direction.egress() {
            for device in interfaces {
                shape_device(device, handle, selection, rate, Side::Egress, &mut shaped.egress)?;
            }
        }
        if selection.direction.ingress() {
            let ifb = ifb_name(public_port);
            tools::run("ip", &["link", "add", &ifb, "type", "ifb"], None)?;
            shaped.ifb = Some(ifb.clone());
            tools::run("ip", &["link", "set", &ifb, "up"], None)?;
            // The ifb's qdiscs go with the device.
            shape_device(&ifb, handle, selection, rate, Side::Ingress, &mut Vec::new())?;
            for device in interfaces {
                let made = match tools::run("tc", &["qdisc", "add", "dev", device, "handle", "ffff:", "ingress"], None)
                {
                    Ok(_) => true,
                    Err(CommandError::Failed(message))
                        if message.contains("File exists") || message.contains("Exclusivity") =>
                    {
                        false
                    }
                    Err(err) => return Err(err),
                };
                shaped.ingress.push((device.clone(), made));
                let prio = handle.to_string();
                tools::run(
                    "tc",
                    &[
                        "filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "prio", &prio, "u32",
                        "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", &ifb,
                    ],
                    None,
                )?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(shaped),
        Err(err) => {
            remove(&shaped);
            Err(err)
        }
    }
}

/// Undoes what `install` did; what is already gone is skipped.
pub fn remove(shaped: &Shaped) {
    let handle = format!("{:x}:", shaped.handle);
    for device in &shaped.egress {
        let _ = tools::run("tc", &["qdisc", "del", "dev", device, "root", "handle", &handle], None);
    }
    let prio = shaped.handle.to_string();
    for (device, made) in &shaped.ingress {
        let _ = tools::run("tc", &["filter", "del", "dev", device, "parent", "ffff:", "prio", &prio], None);
        if *made {
            let _ = tools::run("tc", &["qdisc", "del", "dev", device, "ingress"], None);
        }
    }
    if let Some(ifb) = &shaped.ifb {
        let _ = tools::run("ip", &["link", "del", ifb], None);
    }
}

#[derive(Clone, Copy)]
enum Side {
    Egress,
    Ingress,
}

/// Puts the htb root on `device` (noted in `rooted` as soon as it is there, so a later failure undoes it),
/// its two classes and its filters.
fn shape_device(
    device: &str,
    handle: u16,
    selection: &Selection,
    rate: Rate,
    side: Side,
    rooted: &mut Vec<String>,
) -> Result<(), CommandError> {
    let everything = selection.remote.is_empty()
        && selection.remote_ports.is_empty()
        && selection.local_ports.is_empty()
        && selection.protocol == Protocol::All;
    let root = format!("{handle:x}:");
    let default = if everything { "1" } else { "2" };
    match tools::run("tc", &["qdisc", "add", "dev", device, "root", "handle", &root, "htb", "default", default], None) {
        Ok(_) => {}
        Err(CommandError::Failed(message)) if message.contains("Exclusivity") || message.contains("File exists") => {
            return Err(CommandError::Conflict(format!(
                "{device} already has a queueing discipline of its own (another net/bandwidth fault, or one set by \
                 hand); `tc qdisc show dev {device}` shows it"
            )));
        }
        Err(err) => return Err(err),
    }
    rooted.push(device.to_owned());
    let shaped = format!("{handle:x}:1");
    let free = format!("{handle:x}:2");
    let rate_text = rate.0.to_string() + "bit";
    tools::run(
        "tc",
        &[
            "class", "add", "dev", device, "parent", &root, "classid", &shaped, "htb", "rate", &rate_text, "ceil",
            &rate_text,
        ],
        None,
    )?;
    tools::run(
        "tc",
        &["class", "add", "dev", device, "parent", &root, "classid", &free, "htb", "rate", FREE_RATE],
        None,
    )?;
    for filter in filters(selection, side, everything) {
        let flowid = if filter.shaped { &shaped } else { &free };
        let mut args: Vec<&str> = vec![
            "filter",
            "add",
            "dev",
            device,
            "parent",
            &root,
            "protocol",
            filter.protocol,
            "prio",
            filter.prio,
            "u32",
        ];
        args.extend(filter.matches.iter().map(String::as_str));
        args.extend(["flowid", flowid.as_str()]);
        tools::run("tc", &args, None)?;
    }
    Ok(())
}

struct Filter {
    protocol: &'static str,
    prio: &'static str,
    matches: Vec<String>,
    shaped: bool,
}

/// The u32 filters: the control plane's ports to the free class first, then the selection to the shaped one.
fn filters(selection: &Selection, side: Side, everything: bool) -> Vec<Filter> {
    let mut out = Vec::new();
    for port in &selection.exempt_ports {
        for (protocol, family, prio) in [("ip", "ip", "1"), ("ipv6", "ip6", "2")] {
            for direction in ["sport", "dport"] {
                out.push(Filter {
                    protocol,
                    prio,
                    matches: words(&format!("match {family} protocol 6 0xff match {family} {direction} {port} 0xffff")),
                    shaped: false,
                });
            }
        }
    }
    if everything {
        return out;
    }
    let (addr, remote_port, local_port) = match side {
        Side::Egress => ("dst", "dport", "sport"),
        Side::Ingress => ("src", "sport", "dport"),
    };
    let protocols: Vec<u8> = match selection.protocol {
        Protocol::Tcp => vec![6],
        Protocol::Udp => vec![17],
        Protocol::Icmp => vec![1],
        Protocol::All if !selection.remote_ports.is_empty() || !selection.local_ports.is_empty() => vec![6, 17],
        Protocol::All => vec![],
    };
    let (v4, v6) = selection.families();
    // tc wants one protocol per priority: IPv4 and IPv6 filters each get their own.
    for (protocol, family, prio, nets, on) in
        [("ip", "ip", "3", selection.v4(), v4), ("ipv6", "ip6", "4", selection.v6(), v6)]
    {
        if !on {
            continue;
        }
        let nets: Vec<Option<IpNet>> = if nets.is_empty() { vec![None] } else { nets.into_iter().map(Some).collect() };
        let remote_ports: Vec<Option<u16>> = options(&selection.remote_ports);
        let local_ports: Vec<Option<u16>> = options(&selection.local_ports);
        let l4: Vec<Option<u8>> =
            if protocols.is_empty() { vec![None] } else { protocols.iter().copied().map(Some).collect() };
        for net in &nets {
            for proto in &l4 {
                for rport in &remote_ports {
                    for lport in &local_ports {
                        let mut text = String::new();
                        if let Some(net) = net {
                            text.push_str(&format!(" match {family} {addr} {net}"));
                        }
                        if let Some(proto) = proto {
                            let number = if *proto == 1 && family == "ip6" { 58 } else { *proto };
                            text.push_str(&format!(" match {family} protocol {number} 0xff"));
                        }
                        if let Some(port) = rport {
                            text.push_str(&format!(" match {family} {remote_port} {port} 0xffff"));
                        }
                        if let Some(port) = lport {
                            text.push_str(&format!(" match {family} {local_port} {port} 0xffff"));
                        }
                        if text.is_empty() {
                            text.push_str(" match u32 0 0");
                        }
                        out.push(Filter { protocol, prio, matches: words(&text), shaped: true });
                    }
                }
            }
        }
    }
    out
}

fn options(ports: &[u16]) -> Vec<Option<u16>> {
    if ports.is_empty() {
        vec![None]
    } else {
        ports.iter().copied().map(Some).collect()
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bits_per_second_in_tc_words() {
        assert_eq!(Rate::parse("10mbit").unwrap(), Rate(10_000_000));
        assert_eq!(Rate::parse("1.5Mbit/s").unwrap(), Rate(1_500_000));
        assert_eq!(Rate::parse("1gbit").unwrap().to_string(), "1gbit");
        assert!(Rate::parse("10mbps").unwrap_err().contains("bits per second"));
        assert!(Rate::parse("1bit").is_err());
    }
}
