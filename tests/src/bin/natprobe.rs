//! Finds out what a router's NAT does, for the network lab: from one UDP socket, asks two
//! ports of a server which source address they see.
//!
//! - `natprobe serve IP PORT1 PORT2`: answers every datagram on either port with the sender's
//!   address as text; prints `ready`.
//! - `natprobe ask IP PORT1 PORT2`: prints `mapped ADDR1 ADDR2` (the same address twice:
//!   endpoint-independent mapping; two ports: symmetric NAT), or `blocked` if no answer comes.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = || std::io::Error::other("usage: natprobe serve|ask IP PORT1 PORT2");
    let (mode, ip, p1, p2) = match &args[1..] {
        [m, ip, p1, p2] => (m.as_str(), ip, p1, p2),
        _ => return Err(usage()),
    };
    let ip: IpAddr = ip.parse().map_err(|_| usage())?;
    let port = |p: &String| p.parse::<u16>().map_err(|_| usage());
    let targets = [
        SocketAddr::new(ip, port(p1)?),
        SocketAddr::new(ip, port(p2)?),
    ];
    match mode {
        "serve" => serve(targets),
        "ask" => ask(targets),
        _ => Err(usage()),
    }
}

fn serve(addrs: [SocketAddr; 2]) -> std::io::Result<()> {
    let sockets = [UdpSocket::bind(addrs[0])?, UdpSocket::bind(addrs[1])?];
    println!("ready");
    let workers: Vec<_> = sockets
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(from.to_string().as_bytes(), from);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn ask(targets: [SocketAddr; 2]) -> std::io::Result<()> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut seen: [Option<String>; 2] = [None, None];
    for _ in 0..10 {
        for (i, t) in targets.iter().enumerate() {
            if seen[i].is_none() {
                s.send_to(b"?", t)?;
            }
        }
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if let Some(i) = targets.iter().position(|t| *t == from) {
                seen[i] = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        if let [Some(a), Some(b)] = &seen {
            println!("mapped {a} {b}");
            return Ok(());
        }
    }
    println!("blocked");
    Ok(())
}
