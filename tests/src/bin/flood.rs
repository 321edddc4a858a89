//! Load generator for the relay's abuse bounds (`bench/flood.sh`): random UDP datagrams,
//! half-open QUIC handshakes, unauthenticated agent registrations and bad staff tokens, all
//! from one address. Loopback only, bounded in count and in time; it stops by itself.
//!
//! Usage: flood RELAY_ADDR FINGERPRINT FROM_IP [datagrams half_open registrations bad_tokens]

use protocol::ids::TicketNumber;
use protocol::signaling::{FromRelay, Refusal, StaffToken, ToRelay};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::config::RelayTrust;
use transport::relay_client::RelayClient;

/// The whole flood ends after this long, whatever is left.
const MAX_DURATION: Duration = Duration::from_secs(120);
/// Connections in flight at once per phase.
const CONCURRENCY: usize = 50;

type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

fn count(t: &Tally, what: impl Into<String>) {
    *t.lock().unwrap().entry(what.into()).or_default() += 1;
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("random");
    u64::from_be_bytes(b)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: flood RELAY_ADDR FINGERPRINT FROM_IP [datagrams half_open registrations bad_tokens]");
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
    let (datagrams, half_open, registrations, bad_tokens) =
        (n(4, 10_000), n(5, 500), n(6, 2_000), n(7, 200));
    let tally: Tally = Arc::default();
    let start = Instant::now();
    let flood = async {
        tokio::join!(
            random_datagrams(relay, from, datagrams, &tally),
            half_open_handshakes(relay, from, half_open, &tally),
            fake_registrations(relay, from, &trust, registrations, &tally),
            bad_staff_tokens(relay, from, &trust, bad_tokens, &tally),
        )
    };
    if tokio::time::timeout(MAX_DURATION, flood).await.is_err() {
        count(&tally, "flood cut off at its time limit");
    }
    println!("flood done in {:.1} s", start.elapsed().as_secs_f64());
    for (k, v) in tally.lock().unwrap().iter() {
        println!("  {k}: {v}");
    }
}

async fn random_datagrams(relay: SocketAddr, from: IpAddr, n: usize, t: &Tally) {
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
        }
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Starts handshakes and abandons them after the first flight: the relay holds each until its
/// handshake timeout.
async fn half_open_handshakes(relay: SocketAddr, from: IpAddr, n: usize, t: &Tally) {
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
) {
    let held: Arc<Mutex<Vec<RelayClient>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (trust, t, held) = (trust.clone(), t.clone(), held.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let addr = relay.to_string();
            let link = match tokio::time::timeout(
                Duration::from_secs(5),
                transport::config::connect_relay_from(
                    &addr,
                    &trust,
                    Some(SocketAddr::new(from, 0)),
                ),
            )
            .await
            {
                Ok(Ok(l)) => l,
                _ => return count(&t, "registration: connection refused or timed out"),
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
            if client.send(&hello).await.is_err() {
                return count(&t, "registration: send failed");
            }
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
) {
    for _ in 0..n {
        let addr = relay.to_string();
        let Ok(Ok(link)) = tokio::time::timeout(
            Duration::from_secs(5),
            transport::config::connect_relay_from(&addr, trust, Some(SocketAddr::new(from, 0))),
        )
        .await
        else {
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
        let _ = client.send(&join).await;
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
