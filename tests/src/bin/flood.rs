//! Load generator for the relay's abuse bounds (`bench/flood.sh`), from one address. Loopback
//! only, bounded in count and in time; it stops by itself.
//!
//! Usage: flood RELAY_ADDR FINGERPRINT FROM_IP MODE [COUNTS...]
//!
//! - `mixed [datagrams half_open registrations bad_tokens]`: random UDP datagrams, half-open
//!   QUIC handshakes, unauthenticated agent registrations (kept open), bad staff tokens.
//! - `registration-messages CONNECTIONS`: each registers an agent, then floods its stream
//!   with renewals.
//! - `join-messages CONNECTIONS`: each joins with a bad staff token, then floods its stream
//!   with pairing messages.
//! - `tiny-frames CONNECTIONS`: each writes one buffer of one-byte frames.
//! - `bad-tokens N`: N joins with bad staff tokens, one after another.
//!
//! Prints a tally, and `attacker messages N` and `attacker bytes N`: what the flood wrote.

use protocol::ids::TicketNumber;
use protocol::signaling::{FromRelay, Refusal, StaffToken, ToRelay, MAX_SIGNALING_LEN};
use protocol::wire::encode_frame;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::config::RelayTrust;
use transport::framed::FramedRecv;
use transport::relay_client::RelayClient;

/// The whole flood ends after this long, whatever is left.
const MAX_DURATION: Duration = Duration::from_secs(120);
/// Connections in flight at once per phase.
const CONCURRENCY: usize = 50;
/// Messages each connection of a message flood tries to write.
const MESSAGES_PER_CONNECTION: usize = 10_000;
/// One-byte frames each connection of a tiny-frame flood writes.
const TINY_FRAMES_PER_CONNECTION: usize = 100_000;

type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

fn count(t: &Tally, what: impl Into<String>) {
    *t.lock().unwrap().entry(what.into()).or_default() += 1;
}

/// What the flood wrote to the relay: messages (frames, datagrams, handshakes) and bytes.
#[derive(Default)]
struct Sent {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Sent {
    fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("random");
    u64::from_be_bytes(b)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: flood RELAY_ADDR FINGERPRINT FROM_IP MODE [COUNTS...] (see the source)");
        std::process::exit(2);
    }
    let relay: SocketAddr = args[1].parse().expect("relay address ip:port");
    let from: IpAddr = args[3].parse().expect("source ip");
    assert!(
        relay.ip().is_loopback() && from.is_loopback(),
        "the flood only ever targets loopback"
    );
    let fp = args[2].parse().expect("fingerprint");
    let trust = RelayTrust::Pinned(fp);
    let n = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let tally: Tally = Arc::default();
    let sent = Arc::new(Sent::default());
    let start = Instant::now();
    let flood = async {
        match args[4].as_str() {
            "mixed" => {
                tokio::join!(
                    random_datagrams(relay, from, n(5, 10_000), &tally, &sent),
                    half_open_handshakes(relay, from, n(6, 500), &tally, &sent),
                    fake_registrations(relay, from, &trust, n(7, 2_000), &tally, &sent),
                    bad_staff_tokens(relay, from, &trust, n(8, 200), &tally, &sent),
                );
            }
            "registration-messages" | "join-messages" | "tiny-frames" => {
                stream_floods(relay, from, &trust, &args[4], n(5, 20), &tally, &sent).await
            }
            "bad-tokens" => bad_staff_tokens(relay, from, &trust, n(5, 200), &tally, &sent).await,
            other => panic!("unknown mode {other}"),
        }
    };
    if tokio::time::timeout(MAX_DURATION, flood).await.is_err() {
        count(&tally, "flood cut off at its time limit");
    }
    println!("flood done in {:.1} s", start.elapsed().as_secs_f64());
    for (k, v) in tally.lock().unwrap().iter() {
        println!("  {k}: {v}");
    }
    println!(
        "attacker messages {}",
        sent.messages.load(Ordering::Relaxed)
    );
    println!("attacker bytes {}", sent.bytes.load(Ordering::Relaxed));
}

/// A QUIC connection to the relay from the flood's address, or `None` (refused, or no answer
/// within 5 s).
async fn connect(
    relay: SocketAddr,
    from: IpAddr,
    trust: &RelayTrust,
) -> Option<transport::config::RelayConnection> {
    tokio::time::timeout(
        Duration::from_secs(5),
        transport::config::connect_relay_from(
            &relay.to_string(),
            trust,
            Some(SocketAddr::new(from, 0)),
        ),
    )
    .await
    .ok()?
    .ok()
}

/// Opens `connections` signaling streams, each flooded as `mode` says, at most
/// [`CONCURRENCY`] at once; tallies how the relay ended each.
async fn stream_floods(
    relay: SocketAddr,
    from: IpAddr,
    trust: &RelayTrust,
    mode: &str,
    connections: usize,
    t: &Tally,
    sent: &Arc<Sent>,
) {
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (trust, t, mode, sent) = (trust.clone(), t.clone(), mode.to_owned(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let Some(link) = connect(relay, from, &trust).await else {
                return count(&t, format!("{mode}: connection refused or timed out"));
            };
            let Ok((mut send, recv)) = link.conn.open_bi().await else {
                return count(&t, format!("{mode}: no stream"));
            };
            let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
            let ticket = TicketNumber::from_u64(1 + random_u64() % 999_999).expect("ticket");
            // What goes first, then the frame repeated, and how often.
            let (hello, frame, times) = match mode.as_str() {
                "registration-messages" => (
                    Some(ToRelay::RegisterAgent {
                        version: protocol::PROTOCOL_VERSION,
                        ticket,
                        host_name: format!("flood-{}", random_u64() % 100_000),
                        agent_version: "flood".into(),
                    }),
                    encode_frame(&ToRelay::Renew.encode()),
                    MESSAGES_PER_CONNECTION,
                ),
                "join-messages" => (
                    Some(ToRelay::JoinAsViewer {
                        version: protocol::PROTOCOL_VERSION,
                        token: StaffToken(format!("fh_{:016x}", random_u64())),
                        ticket,
                        host_name: None,
                    }),
                    encode_frame(
                        &ToRelay::Pairing {
                            pairing: 1,
                            msg: vec![0; 33],
                        }
                        .encode(),
                    ),
                    MESSAGES_PER_CONNECTION,
                ),
                _ => (None, encode_frame(&[6]), TINY_FRAMES_PER_CONNECTION),
            };
            if let Some(h) = hello {
                let bytes = encode_frame(&h.encode());
                if send.write_all(&bytes).await.is_err() {
                    return count(&t, format!("{mode}: hello not sent"));
                }
                sent.add(1, bytes.len() as u64);
                if mode == "registration-messages" {
                    // The flood starts once the agent is registered.
                    match tokio::time::timeout(Duration::from_secs(5), recv.next()).await {
                        Ok(Ok(Some(m)))
                            if matches!(
                                FromRelay::decode(&m),
                                Ok(FromRelay::AgentRegistered { .. })
                            ) => {}
                        _ => return count(&t, format!("{mode}: not registered")),
                    }
                }
            }
            // In batches of 1,000 frames, counted as far as the relay took them.
            let batch: Vec<u8> = frame.repeat(1000.min(times));
            let mut written = 0;
            while written < times {
                if send.write_all(&batch).await.is_err() {
                    break;
                }
                sent.add(1000.min(times) as u64, batch.len() as u64);
                written += 1000.min(times);
            }
            let _ = send.finish();
            let end = match tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match recv.next().await {
                        Ok(Some(m)) => match FromRelay::decode(&m) {
                            Ok(FromRelay::Refused(r)) => {
                                return format!("refused {}", refusal_name(&r))
                            }
                            _ => continue,
                        },
                        Ok(None) => return "stream ended".to_owned(),
                        Err(_) => return "connection closed".to_owned(),
                    }
                }
            })
            .await
            {
                Ok(e) => e,
                Err(_) => "still open after 10 s".to_owned(),
            };
            let all = if written >= times {
                "all written"
            } else {
                "cut off"
            };
            count(&t, format!("{mode}: {all}, then {end}"));
            link.close(b"flood over").await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn random_datagrams(relay: SocketAddr, from: IpAddr, n: usize, t: &Tally, sent: &Arc<Sent>) {
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("bind");
    let mut buf = vec![0u8; 1400];
    for i in 0..n {
        let len = 1 + (random_u64() as usize % buf.len());
        getrandom::getrandom(&mut buf[..len]).expect("random");
        // Every tenth looks like a QUIC long-header Initial, so it gets past the first byte.
        if i % 10 == 0 {
            buf[0] = 0xc0;
            buf[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        if sock.send_to(&buf[..len], relay).await.is_ok() {
            count(t, "datagrams sent");
            sent.add(1, len as u64);
        }
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Starts handshakes and abandons them after the first flight: the relay holds each until its
/// handshake timeout.
async fn half_open_handshakes(
    relay: SocketAddr,
    from: IpAddr,
    n: usize,
    t: &Tally,
    sent: &Arc<Sent>,
) {
    let fp = protocol::fingerprint::CertFingerprint([0; 32]);
    let (config, _) =
        transport::config::relay_client_config(&RelayTrust::Pinned(fp)).expect("client config");
    for _ in 0..n {
        let Ok(mut ep) = quinn::Endpoint::client(SocketAddr::new(from, 0)) else {
            count(t, "half-open: no socket");
            continue;
        };
        ep.set_default_client_config(config.clone());
        if let Ok(connecting) = ep.connect(relay, "fernhilfe-relay") {
            let _ = tokio::time::timeout(Duration::from_millis(2), connecting).await;
            count(t, "half-open handshakes started");
            // One Initial of the minimum size QUIC pads it to.
            sent.add(1, 1200);
        }
        drop(ep);
    }
}

fn refusal_name(r: &Refusal) -> String {
    format!("{r:?}")
        .split([' ', '{'])
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Registers agents under random tickets and keeps them connected until the end, as a host
/// trying to fill the relay would.
async fn fake_registrations(
    relay: SocketAddr,
    from: IpAddr,
    trust: &RelayTrust,
    n: usize,
    t: &Tally,
    sent: &Arc<Sent>,
) {
    let held: Arc<Mutex<Vec<RelayClient>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (trust, t, held, sent) = (trust.clone(), t.clone(), held.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let Some(link) = connect(relay, from, &trust).await else {
                return count(&t, "registration: connection refused or timed out");
            };
            let Ok(mut client) = RelayClient::from_link(link).await else {
                return count(&t, "registration: no stream");
            };
            let ticket = TicketNumber::from_u64(1 + random_u64() % 999_999).expect("ticket");
            let hello = ToRelay::RegisterAgent {
                version: protocol::PROTOCOL_VERSION,
                ticket,
                host_name: format!("flood-{i}"),
                agent_version: "flood".into(),
            };
            let bytes = 4 + hello.encode().len() as u64;
            if client.send(&hello).await.is_err() {
                return count(&t, "registration: send failed");
            }
            sent.add(1, bytes);
            match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
                Ok(Ok(FromRelay::AgentRegistered { .. })) => {
                    count(&t, "registration: accepted");
                    held.lock().unwrap().push(client);
                }
                Ok(Ok(FromRelay::Refused(r))) => {
                    count(&t, format!("registration: refused {}", refusal_name(&r)))
                }
                _ => count(&t, "registration: no answer"),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    // Close them all and let the closes reach the relay, so the next run starts clean.
    let clients = std::mem::take(&mut *held.lock().unwrap());
    let closes: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.close(b"flood over").await }))
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        for c in closes {
            let _ = c.await;
        }
    })
    .await;
}

async fn bad_staff_tokens(
    relay: SocketAddr,
    from: IpAddr,
    trust: &RelayTrust,
    n: usize,
    t: &Tally,
    sent: &Arc<Sent>,
) {
    for _ in 0..n {
        let Some(link) = connect(relay, from, trust).await else {
            count(t, "bad token: connection refused or timed out");
            continue;
        };
        let Ok(mut client) = RelayClient::from_link(link).await else {
            count(t, "bad token: no stream");
            continue;
        };
        let join = ToRelay::JoinAsViewer {
            version: protocol::PROTOCOL_VERSION,
            token: StaffToken(format!("fh_{:016x}", random_u64())),
            ticket: TicketNumber::from_u64(4711).expect("ticket"),
            host_name: None,
        };
        if client.send(&join).await.is_ok() {
            sent.add(1, 4 + join.encode().len() as u64);
        }
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
            Ok(Ok(FromRelay::Refused(r))) => {
                count(t, format!("bad token: refused {}", refusal_name(&r)))
            }
            Ok(Ok(_)) => count(t, "bad token: ACCEPTED (must never happen)"),
            _ => count(t, "bad token: no answer"),
        }
        client.close(b"done").await;
    }
}
