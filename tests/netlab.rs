//! A network lab in Linux network namespaces: a "public" segment with the relay, the agent's
//! PC behind one router and the viewer's behind another, each router doing what real ones do
//! (NAT with iptables, dropping unsolicited packets to its own address, or blocking UDP as a
//! school firewall does). Needs root; everything is removed when the lab drops.
//!
//! ```text
//!   agent host 10.0.1.2 ── router A 10.0.1.1 | 203.0.113.10 ─┐
//!                                                           br0 ── relay 203.0.113.1
//!   viewer host 10.0.2.2 ── router V 10.0.2.1 | 203.0.113.20 ─┘
//! ```
//!
//! [`Lab::same_lan`] puts the viewer's PC at 10.0.1.3 on the agent's LAN instead.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The relay's address on the public segment.
pub const RELAY_IP: &str = "203.0.113.1";

/// What a router between a PC and the public segment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// Plain routing: the PC's address is reachable from the public segment.
    NoNat,
    /// NAT as home routers do (MASQUERADE): the same outside port for one inside socket while
    /// it is free; unsolicited packets dropped.
    Nat,
    /// Symmetric NAT (MASQUERADE --random-fully): a new outside port per destination.
    SymmetricNat,
    /// NAT, and all UDP out blocked except DNS, as many school firewalls do.
    UdpBlocked,
}

/// What a PC's router does to its UDP, as the public segment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpMapping {
    /// No UDP gets out.
    Blocked,
    /// One socket keeps one address whatever the destination: this one.
    EndpointIndependent(String),
    /// Each destination sees the socket at another address.
    PerDestination(String, String),
}

/// One side of the lab.
#[derive(Clone, Copy)]
enum Side {
    Agent,
    Viewer,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::Agent => "a",
            Side::Viewer => "v",
        }
    }
    fn subnet(self) -> u8 {
        match self {
            Side::Agent => 1,
            Side::Viewer => 2,
        }
    }
    fn wan_ip(self) -> &'static str {
        match self {
            Side::Agent => "203.0.113.10",
            Side::Viewer => "203.0.113.20",
        }
    }
}

/// The namespaces of one lab; removed on drop.
pub struct Lab {
    prefix: String,
    /// Namespace of the relay.
    pub public: String,
    /// Namespace of the agent's PC.
    pub agent_host: String,
    /// Namespace of the viewer's PC.
    pub viewer_host: String,
    agent_router: String,
    viewer_router: String,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ns(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all);
}

impl Lab {
    /// Builds the lab with these routers on the agent's and the viewer's side.
    pub fn new(agent: Router, viewer: Router) -> Lab {
        Self::build(agent, Some(viewer))
    }

    /// Builds the lab with both PCs on one LAN behind one router (the viewer's PC is
    /// 10.0.1.3, next to the agent's).
    pub fn same_lan(router: Router) -> Lab {
        Self::build(router, None)
    }

    fn build(agent: Router, viewer: Option<Router>) -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "fh{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let lab = Lab {
            public: format!("{prefix}-pub"),
            agent_host: format!("{prefix}-ha"),
            viewer_host: format!("{prefix}-hv"),
            agent_router: format!("{prefix}-ra"),
            viewer_router: format!("{prefix}-rv"),
            prefix,
        };
        for n in [
            &lab.public,
            &lab.agent_host,
            &lab.viewer_host,
            &lab.agent_router,
            &lab.viewer_router,
        ] {
            run(&["ip", "netns", "add", n]);
            run(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip",
            "-n",
            &lab.public,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
        ]);
        run(&["ip", "-n", &lab.public, "link", "set", "br0", "up"]);
        // The public namespace also routes between the sides' public networks, so PCs without
        // NAT reach each other as on the internet.
        ns(&lab.public, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        run(&[
            "ip",
            "-n",
            &lab.public,
            "addr",
            "add",
            &format!("{RELAY_IP}/24"),
            "dev",
            "br0",
        ]);
        lab.side(Side::Agent, agent);
        match viewer {
            Some(viewer) => lab.side(Side::Viewer, viewer),
            None => {
                lab.plug_pc(&lab.agent_router, &lab.viewer_host, "v0");
                Self::address_pc(&lab.viewer_host, Side::Agent.subnet(), 3);
            }
        }
        // Count the agent's PC's traffic with and without the relay, for the share of bytes
        // that went direct (rules without a target only count).
        for (chain, dir, dev) in [("OUTPUT", "-d", "-o"), ("INPUT", "-s", "-i")] {
            ns(&lab.agent_host, &["iptables", "-A", chain, dir, RELAY_IP]);
            ns(
                &lab.agent_host,
                &["iptables", "-A", chain, "!", dir, RELAY_IP, "!", dev, "lo"],
            );
        }
        lab
    }

    /// Bytes the agent's PC sent and received since the last call: (with the relay, with
    /// anyone else). IP bytes, both directions, counters reset on reading.
    pub fn agent_bytes(&self) -> (u64, u64) {
        let (mut relay, mut other) = (0, 0);
        for chain in ["OUTPUT", "INPUT"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.agent_host, "iptables", "-L", chain])
                .args(["-v", "-n", "-x", "-Z"])
                .output()
                .expect("iptables");
            for line in String::from_utf8_lossy(&out.stdout).lines().skip(2) {
                let f: Vec<&str> = line.split_whitespace().collect();
                let Some(bytes) = f.get(1).and_then(|b| b.parse::<u64>().ok()) else {
                    continue;
                };
                if line.contains(&format!("!{RELAY_IP}")) {
                    other += bytes;
                } else if line.contains(RELAY_IP) {
                    relay += bytes;
                }
            }
        }
        (relay, other)
    }

    fn router_ns(&self, side: Side) -> &str {
        match side {
            Side::Agent => &self.agent_router,
            Side::Viewer => &self.viewer_router,
        }
    }

    fn host_ns(&self, side: Side) -> &str {
        match side {
            Side::Agent => &self.agent_host,
            Side::Viewer => &self.viewer_host,
        }
    }

    fn side(&self, side: Side, router: Router) {
        let (r, h, t, net) = (
            self.router_ns(side),
            self.host_ns(side),
            side.tag(),
            side.subnet(),
        );
        let (wan, port) = (format!("wan{t}"), format!("p{t}"));
        // Interface names are per namespace, but the veth is created in ours first: keep
        // them unique per lab.
        let (tmp_wan, tmp_port) = (
            format!("{}w{t}", self.prefix),
            format!("{}p{t}", self.prefix),
        );
        run(&[
            "ip", "link", "add", &tmp_wan, "type", "veth", "peer", "name", &tmp_port,
        ]);
        run(&["ip", "link", "set", &tmp_wan, "netns", r]);
        run(&["ip", "link", "set", &tmp_port, "netns", &self.public]);
        run(&["ip", "-n", r, "link", "set", &tmp_wan, "name", &wan]);
        run(&[
            "ip",
            "-n",
            &self.public,
            "link",
            "set",
            &tmp_port,
            "name",
            &port,
        ]);
        run(&[
            "ip",
            "-n",
            &self.public,
            "link",
            "set",
            &port,
            "master",
            "br0",
            "up",
        ]);
        // The LAN is a bridge, so a second PC can join it (`Lab::same_lan`).
        run(&["ip", "-n", r, "link", "add", "lan", "type", "bridge"]);
        self.plug_pc(r, h, &format!("{t}0"));
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{}/24", side.wan_ip()),
            "dev",
            &wan,
        ]);
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("10.0.{net}.1/24"),
            "dev",
            "lan",
        ]);
        for dev in [wan.as_str(), "lan"] {
            run(&["ip", "-n", r, "link", "set", dev, "up"]);
        }
        Self::address_pc(h, net, 2);
        ns(r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // The public segment is the internet: everything not local goes there.
        run(&["ip", "-n", r, "route", "add", "default", "via", RELAY_IP]);
        match router {
            Router::NoNat => {
                // The public side reaches the PC through its router.
                run(&[
                    "ip",
                    "-n",
                    &self.public,
                    "route",
                    "add",
                    &format!("10.0.{net}.0/24"),
                    "via",
                    side.wan_ip(),
                ]);
            }
            Router::Nat | Router::SymmetricNat | Router::UdpBlocked => {
                let mut masq = vec![
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-o",
                    &wan,
                    "-j",
                    "MASQUERADE",
                ];
                if router == Router::SymmetricNat {
                    masq.push("--random-fully");
                }
                ns(r, &masq);
                // Only answers come in, to the PC and to the router itself (see the design
                // brief: without the INPUT rule a peer's punch turns easy NAT into hard).
                for chain in ["FORWARD", "INPUT"] {
                    ns(
                        r,
                        &[
                            "iptables",
                            "-A",
                            chain,
                            "-i",
                            &wan,
                            "-m",
                            "conntrack",
                            "--ctstate",
                            "ESTABLISHED,RELATED",
                            "-j",
                            "ACCEPT",
                        ],
                    );
                    ns(r, &["iptables", "-A", chain, "-i", &wan, "-j", "DROP"]);
                }
                if router == Router::UdpBlocked {
                    ns(
                        r,
                        &[
                            "iptables", "-I", "FORWARD", "-i", "lan", "-p", "udp", "!", "--dport",
                            "53", "-j", "DROP",
                        ],
                    );
                }
            }
        }
    }

    /// Connects PC namespace `h` to the LAN bridge of router `r` (its `eth0`).
    fn plug_pc(&self, r: &str, h: &str, tag: &str) {
        let (tmp_port, tmp_eth) = (
            format!("{}l{tag}", self.prefix),
            format!("{}e{tag}", self.prefix),
        );
        run(&[
            "ip", "link", "add", &tmp_port, "type", "veth", "peer", "name", &tmp_eth,
        ]);
        run(&["ip", "link", "set", &tmp_port, "netns", r]);
        run(&["ip", "link", "set", &tmp_eth, "netns", h]);
        run(&["ip", "-n", h, "link", "set", &tmp_eth, "name", "eth0"]);
        run(&[
            "ip", "-n", r, "link", "set", &tmp_port, "master", "lan", "up",
        ]);
    }

    /// Gives PC namespace `h` address 10.0.`net`.`host` and its router as default route.
    fn address_pc(h: &str, net: u8, host: u8) {
        run(&[
            "ip",
            "-n",
            h,
            "addr",
            "add",
            &format!("10.0.{net}.{host}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", h, "link", "set", "eth0", "up"]);
        run(&[
            "ip",
            "-n",
            h,
            "route",
            "add",
            "default",
            "via",
            &format!("10.0.{net}.1"),
        ]);
    }

    /// The namespace of the agent's router (`agent_side`) or the viewer's.
    pub fn router(&self, agent_side: bool) -> &str {
        if agent_side {
            &self.agent_router
        } else {
            &self.viewer_router
        }
    }

    /// The router's interface to the public segment.
    pub fn wan(&self, agent_side: bool) -> &'static str {
        if agent_side {
            "wana"
        } else {
            "wanv"
        }
    }

    /// Runs `args` in namespace `ns`; whether it succeeded.
    pub fn try_exec(&self, ns_name: &str, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", ns_name])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs `args` in namespace `ns`; panics if it fails.
    pub fn exec(&self, ns_name: &str, args: &[&str]) {
        ns(ns_name, args);
    }

    /// `cmd` run inside namespace `ns` (program, arguments and environment kept).
    pub fn command_in(&self, ns: &str, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Asks two ports on the public segment which address one UDP socket of the agent's PC
    /// (`agent_side`) or the viewer's comes from (`natprobe`).
    pub fn udp_mapping(&self, agent_side: bool) -> UdpMapping {
        let probe = crate::bin_dir().join("natprobe");
        let probe = probe.to_str().expect("utf-8 path");
        let ports = [RELAY_IP, "3478", "3479"];
        let mut server = Command::new("ip")
            .args(["netns", "exec", &self.public, probe, "serve"])
            .args(ports)
            .stdout(Stdio::piped())
            .spawn()
            .expect("natprobe serve");
        let mut ready = String::new();
        let _ = BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut ready);
        assert_eq!(ready.trim(), "ready", "natprobe did not start");
        let host = if agent_side {
            &self.agent_host
        } else {
            &self.viewer_host
        };
        let out = Command::new("ip")
            .args(["netns", "exec", host, probe, "ask"])
            .args(ports)
            .output()
            .expect("natprobe ask");
        let _ = server.kill();
        let _ = server.wait();
        let out = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match out.split_whitespace().collect::<Vec<_>>()[..] {
            ["blocked"] => UdpMapping::Blocked,
            ["mapped", a, b] if a == b => UdpMapping::EndpointIndependent(a.to_owned()),
            ["mapped", a, b] => UdpMapping::PerDestination(a.to_owned(), b.to_owned()),
            _ => panic!("natprobe said: {out}"),
        }
    }

    /// Packets the agent's router translated (MASQUERADE rule counter), to check that NAT
    /// really happened.
    pub fn agent_router_nat_packets(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.agent_router,
                "iptables",
                "-t",
                "nat",
                "-L",
                "POSTROUTING",
                "-v",
                "-n",
                "-x",
            ])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("MASQUERADE"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in [
            &self.agent_host,
            &self.viewer_host,
            &self.agent_router,
            &self.viewer_router,
            &self.public,
        ] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}
