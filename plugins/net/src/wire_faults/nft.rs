//! The nftables engine: partitions, loss and DNS redirection, each fault one table of its own
//! (`tarsier_p<port>_f<id>`), installed and removed as one atomic transaction (`nft -f`). A table per fault
//! makes undo exact (deleting it takes every rule and nothing else) and lets faults combine.
//!
//! Drops (loss, `partition` with `drop`) sit on the devices' own `egress` and `ingress` hooks (family
//! `netdev`): a packet dropped there vanishes as on a bad link, where a drop in the IP `output` hook would hand
//! the sending socket an EPERM at once. Rejects and the DNS redirect need IP's hooks (family `inet`).

use std::fmt::Write;

use ipnet::IpNet;
use tarsier_plugin::CommandError;

use super::tools;
use super::traffic::{join, Protocol, Selection};

/// Before iptables' and Docker's filter chains (priority 0): a drop here is final whatever they say.
const FILTER_PRIORITY: i32 = -5;
/// Before Docker's own DNAT of 127.0.0.11 (dstnat, -100): the first NAT a connection gets is the one kept.
const NAT_PRIORITY: i32 = -110;

/// What a matched packet gets.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Drop,
    /// TCP gets a reset, everything else an ICMP "administratively prohibited".
    Reject,
    /// Dropped with this probability, in millionths (nftables has no correlation: each packet on its own).
    DropRandom {
        per_million: u32,
    },
    /// UDP DNS (port 53) redirected to this local port; the responder's own queries carry `mark` and pass.
    RedirectDns {
        port: u16,
        mark: u32,
    },
}

/// The nftables family a fault's table is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Inet,
    Netdev,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Netdev => "netdev",
        }
    }
}

impl Verdict {
    pub fn family(self) -> Family {
        match self {
            Verdict::Drop | Verdict::DropRandom { .. } => Family::Netdev,
            Verdict::Reject | Verdict::RedirectDns { .. } => Family::Inet,
        }
    }
}

pub fn table_name(public_port: u16, fault: u64) -> String {
    format!("tarsier_p{public_port}_f{fault}")
}

/// The nft script that creates the fault's table; `devices` are the interfaces a `netdev` table binds to.
pub fn render(table: &str, selection: &Selection, verdict: Verdict, devices: &[String]) -> String {
    let family = verdict.family();
    let mut script = format!("table {} {table} {{\n", family.as_str());
    if let Verdict::RedirectDns { port, mark } = verdict {
        let _ = writeln!(script, "  chain egress {{\n    type nat hook output priority {NAT_PRIORITY}; policy accept;");
        let _ = writeln!(script, "    meta mark {mark:#x} return");
        let interfaces = match selection.interfaces.is_empty() {
            true => String::new(),
            false => format!("oifname {{ {} }} ", quoted(&selection.interfaces)),
        };
        for (family, nets) in families(selection) {
            let _ = writeln!(
                script,
                "    {interfaces}{}udp dport 53 redirect to :{port}",
                address_match(family, "daddr", &nets)
            );
            let _ = writeln!(
                script,
                "    {interfaces}{}tcp dport 53 reject with tcp reset",
                address_match(family, "daddr", &nets)
            );
        }
        script.push_str("  }\n}\n");
        return script;
    }
    for (chain, hook, oif, remote_addr, remote_port, local_port, on) in [
        ("egress", "output", "oifname", "daddr", "dport", "sport", selection.direction.egress()),
        ("ingress", "input", "iifname", "saddr", "sport", "dport", selection.direction.ingress()),
    ] {
        if !on {
            continue;
        }
        match family {
            Family::Netdev => {
                let hook = if chain == "egress" { "egress" } else { "ingress" };
                let _ = writeln!(
                    script,
                    "  chain {chain} {{\n    type filter hook {hook} devices = {{ {} }} priority {FILTER_PRIORITY}; policy accept;",
                    quoted(devices)
                );
                // ARP and the rest of what is not IP pass: the exempt control plane needs its neighbours.
                script.push_str("    meta protocol != { ip, ip6 } accept\n");
            }
            Family::Inet => {
                let _ = writeln!(
                    script,
                    "  chain {chain} {{\n    type filter hook {hook} priority {FILTER_PRIORITY}; policy accept;"
                );
            }
        }
        if !selection.exempt_ports.is_empty() {
            let ports = join(&selection.exempt_ports);
            let _ = writeln!(script, "    tcp sport {{ {ports} }} accept\n    tcp dport {{ {ports} }} accept");
        }
        if matches!(verdict, Verdict::Reject) && chain == "egress" {
            // The resets and ICMP errors the ingress chain's rejects send leave through this chain: they must
            // get out, or the other end sees a drop.
            script.push_str("    tcp flags & rst == rst accept\n");
            script.push_str(
                "    icmp type destination-unreachable accept\n    icmpv6 type destination-unreachable accept\n",
            );
        }
        // A netdev chain is bound to its devices already.
        let interfaces = match (family, selection.interfaces.is_empty()) {
            (Family::Netdev, _) => String::new(),
            (Family::Inet, true) => format!("{oif} != \"lo\" "),
            (Family::Inet, false) => format!("{oif} {{ {} }} ", quoted(&selection.interfaces)),
        };
        let mut ports = String::new();
        let l4 = match selection.protocol {
            Protocol::All if !selection.remote_ports.is_empty() || !selection.local_ports.is_empty() => {
                "meta l4proto { tcp, udp } "
            }
            Protocol::All => "",
            Protocol::Tcp => "meta l4proto tcp ",
            Protocol::Udp => "meta l4proto udp ",
            Protocol::Icmp => "meta l4proto { icmp, ipv6-icmp } ",
        };
        if !selection.remote_ports.is_empty() {
            let _ = write!(ports, "th {remote_port} {{ {} }} ", join(&selection.remote_ports));
        }
        if !selection.local_ports.is_empty() {
            let _ = write!(ports, "th {local_port} {{ {} }} ", join(&selection.local_ports));
        }
        for (family, nets) in families(selection) {
            let matched = format!("{interfaces}{}{l4}{ports}", address_match(family, remote_addr, &nets));
            match verdict {
                Verdict::Drop => {
                    let _ = writeln!(script, "    {matched}counter drop");
                }
                Verdict::Reject => {
                    let _ = writeln!(script, "    {matched}meta l4proto tcp counter reject with tcp reset");
                    let _ = writeln!(script, "    {matched}counter reject with icmpx type admin-prohibited");
                }
                Verdict::DropRandom { per_million } => {
                    let _ = writeln!(script, "    {matched}numgen random mod 1000000 < {per_million} counter drop");
                }
                Verdict::RedirectDns { .. } => unreachable!("handled above"),
            }
        }
        script.push_str("  }\n");
    }
    script.push_str("}\n");
    script
}

/// Installs a rendered table: one transaction, all or nothing.
pub fn install(script: &str) -> Result<(), CommandError> {
    tools::run("nft", &["-f", "-"], Some(script)).map(drop)
}

/// Deletes a fault's table; one that is already gone is no error.
pub fn remove(family: Family, table: &str) -> Result<(), CommandError> {
    match tools::run("nft", &["delete", "table", family.as_str(), table], None) {
        Ok(_) => Ok(()),
        // nft says "No such file or directory" of a table that is gone (which `tools` reads as a missing
        // kernel piece, right for an add but not for a delete).
        Err(CommandError::Failed(message) | CommandError::Unsupported(message))
            if message.contains("No such file or directory") =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// The packets a table counted dropped or rejected so far (the `counter` of each rule).
pub fn counted_packets(family: Family, table: &str) -> Option<u64> {
    let listing = tools::run("nft", &["list", "table", family.as_str(), table], None).ok()?;
    Some(
        listing
            .split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum(),
    )
}

/// The address match of each family the selection touches (`None` matches the family with no address).
fn families(selection: &Selection) -> Vec<(&'static str, Vec<IpNet>)> {
    if selection.remote.is_empty() {
        return vec![("", Vec::new())];
    }
    let mut out = Vec::new();
    if !selection.v4().is_empty() {
        out.push(("ip", selection.v4()));
    }
    if !selection.v6().is_empty() {
        out.push(("ip6", selection.v6()));
    }
    out
}

fn address_match(family: &str, field: &str, nets: &[IpNet]) -> String {
    if family.is_empty() {
        return String::new();
    }
    format!("{family} {field} {{ {} }} ", join(nets))
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_faults::traffic::Direction;

    fn selection() -> Selection {
        Selection {
            interfaces: vec![],
            remote: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
            resolved: vec![],
            remote_ports: vec![5432],
            local_ports: vec![],
            protocol: Protocol::Tcp,
            direction: Direction::Both,
            exempt_ports: [8080, 8500].into_iter().collect(),
        }
    }

    #[test]
    fn a_partition_exempts_the_control_plane_first_and_matches_each_family() {
        let script = render("tarsier_p8080_f1", &selection(), Verdict::Drop, &["eth0".into()]);
        assert!(script.starts_with("table netdev tarsier_p8080_f1"), "{script}");
        let egress = script.split("chain ingress").next().unwrap();
        assert!(egress.contains("type filter hook egress devices = { \"eth0\" }"), "{script}");
        let exempt = egress.find("tcp dport { 8080, 8500 } accept").unwrap();
        let drop = egress.find("ip daddr { 192.0.2.0/24 }").unwrap();
        assert!(exempt < drop, "{script}");
        assert!(
            egress.contains("ip6 daddr { 2001:db8::/32 } meta l4proto tcp th dport { 5432 } counter drop"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr { 192.0.2.0/24 } meta l4proto tcp th sport { 5432 } counter drop"),
            "{script}"
        );
        let reject = render("t", &selection(), Verdict::Reject, &[]);
        assert!(reject.starts_with("table inet t") && reject.contains("oifname != \"lo\" ip daddr"), "{reject}");
    }

    #[test]
    fn loss_is_a_random_draw_per_packet() {
        let mut selection = selection();
        selection.direction = Direction::Egress;
        let script = render("t", &selection, Verdict::DropRandom { per_million: 10_000 }, &["eth0".into()]);
        assert!(script.contains("numgen random mod 1000000 < 10000 counter drop"), "{script}");
        assert!(!script.contains("chain ingress"));
    }
}
