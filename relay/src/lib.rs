//! The Fernhilfe relay as a library: signaling (pairing agents and viewers by ticket number,
//! staff authentication), the session paths (the embedded iroh relay and address discovery)
//! and the ops listener. [`Relay::spawn`] starts all of it from a resolved [`RelayConfig`];
//! the `fernhilfe-relay` binary is a thin shell of flags, logging and signals around it, and
//! tests start it in-process the same way.
//!
//! The audit record lives in the `audit` crate, the ticket systems in `tickets`.

#![warn(missing_docs)]

mod address_discovery;
mod admission;
pub mod bundle;
pub mod config;
pub mod limits;
mod metrics;
mod ops_listener;
mod pairing_table;
mod path_service;
mod record_budget;
mod rendezvous;
pub mod staff;
pub mod state_dir;
mod throttle;

pub use config::{ConfigFile, RelayConfig, RelayIdentity, ServeFlags};

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use transport::identity::Identity;

/// Signaling streams over TCP waiting to be served; more are refused until these are taken.
const SIGNAL_BACKLOG: usize = 64;
/// How long a stopping relay waits for its QUIC connections to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Starts relays.
pub struct Relay;

/// A running relay: where it listens, and how to stop it.
pub struct RelayHandle {
    /// UDP address of QUIC signaling.
    pub udp: SocketAddr,
    /// TCP address of HTTPS (relay path, signaling over TCP); same port as `udp`.
    pub tcp: SocketAddr,
    /// UDP port of QUIC address discovery.
    pub qad_port: u16,
    /// TCP address of /healthz, /readyz and /metrics.
    pub ops: SocketAddr,
    /// SHA-256 fingerprint of the certificate, as agents and viewers pin it.
    pub fingerprint: protocol::fingerprint::CertFingerprint,
    endpoint: quinn::Endpoint,
    paths: Arc<path_service::PathService>,
    state: Arc<rendezvous::Rendezvous>,
    ready: Arc<AtomicBool>,
    /// Every task of the relay; dropping the set aborts them.
    tasks: JoinSet<()>,
}

impl Relay {
    /// Binds every listener, opens the audit store and starts serving. Fails before
    /// anything serves if a port is taken, the key cannot be read or the configuration is
    /// inconsistent.
    pub async fn spawn(config: RelayConfig) -> Result<RelayHandle> {
        let RelayConfig {
            state_dir,
            listen,
            qad_listen,
            ops_listen,
            identity,
            audit_at,
            retention_days,
            public_address,
            limits,
            tickets,
        } = config;
        state_dir::create(&state_dir)?;
        let id = match identity {
            RelayIdentity::Issued { cert, key } => Identity::load(&cert, &key)?,
            RelayIdentity::Own => {
                let (id, created) = Identity::load_or_create(&state_dir, "fernhilfe-relay")
                    .context("cannot create or load the relay key")?;
                if created {
                    tracing::info!(dir = %state_dir.display(), "created a new relay key and self-signed certificate");
                }
                id
            }
        };
        let connector = match &tickets {
            Some(t) => Some(t.connector().context("[tickets] in relay.toml")?),
            None => None,
        };
        let (endpoint, tcp) = bind_signaling(&id, listen).await?;
        let ops = tokio::net::TcpListener::bind(ops_listen).await.with_context(|| {
            format!("cannot listen on TCP {ops_listen} for /healthz, /readyz and /metrics: is the port in use? (metrics_listen in relay.toml)")
        })?;
        let (tcp_addr, ops_addr) = (tcp.local_addr()?, ops.local_addr()?);
        let (signal_tx, mut signal_rx) = tokio::sync::mpsc::channel(SIGNAL_BACKLOG);
        let admission =
            admission::Admission::new(limits.max_connections_per_address, limits.max_connections);
        let paths = Arc::new(
            path_service::PathService::start(&id, Some(qad_listen), admission.clone(), signal_tx)
                .await?,
        );
        // Reports are queued with their audit record and delivered by the connector's thread.
        let (report_queued, reports) = std::sync::mpsc::channel();
        let audit = audit::AuditLog::open(
            &state_dir,
            &audit_at,
            retention_days,
            connector.is_some().then_some(report_queued),
        )?;
        let mut validator = None;
        if let (Some(t), Some(c)) = (&tickets, connector) {
            tracing::info!(
                system = c.name(),
                validate = t.validate,
                "session reports go to the ticket system"
            );
            tickets::outbox::spawn(
                audit_at.clone(),
                c.clone(),
                reports,
                t.retry_base_secs,
                public_address.clone(),
            )?;
            validator = t
                .validate
                .then(|| tickets::validation::TicketValidator::new(c, t.unchecked));
        }
        let hello_timeout = limits.hello_timeout();
        let state = rendezvous::Rendezvous::new(
            &state_dir,
            limits,
            paths.admission(),
            paths.qad_port(),
            audit,
            validator,
        );
        metrics::metrics().prime();
        let ready = Arc::new(AtomicBool::new(true));
        let mut tasks = JoinSet::new();
        tasks.spawn(rendezvous::Rendezvous::sweep(Arc::downgrade(&state)));
        tasks.spawn(paths.clone().serve_tcp(tcp, admission.clone()));
        tasks.spawn(ops_listener::serve(
            ops,
            Arc::new(ops_hooks(&ready, &state)),
        ));
        // Signaling that came over TCP is served like signaling over QUIC.
        let tcp_state = state.clone();
        tasks.spawn(async move {
            let mut streams = JoinSet::new();
            while let Some(s) = signal_rx.recv().await {
                while streams.try_join_next().is_some() {}
                let state = tcp_state.clone();
                streams.spawn(async move {
                    let _ticket = s.ticket;
                    let (r, w) = tokio::io::split(s.stream);
                    if let Err(e) = state.serve_stream(s.remote, Box::new(w), Box::new(r)).await {
                        tracing::info!(remote = %s.remote, reason = %e, "client disconnected");
                    }
                });
            }
        });
        tasks.spawn(accept_quic(
            endpoint.clone(),
            admission,
            state.clone(),
            hello_timeout,
        ));
        let handle = RelayHandle {
            udp: endpoint.local_addr()?,
            tcp: tcp_addr,
            qad_port: paths.qad_port(),
            ops: ops_addr,
            fingerprint: id.fingerprint(),
            endpoint,
            paths,
            state,
            ready,
            tasks,
        };
        tracing::info!(listen = %handle.udp, state_dir = %state_dir.display(), "relay running");
        Ok(handle)
    }
}

impl RelayHandle {
    /// Stops the relay: not ready any more, every agent told at once (so waiting agents
    /// register again with the restarted relay instead of waiting for a timeout), the relay
    /// path closed, the audit record closed by the checkpoint that says it stopped cleanly.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        self.ready.store(false, Ordering::Relaxed);
        self.endpoint.close(0u32.into(), b"relay shutting down");
        self.paths.shutdown().await;
        let _ = tokio::time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
        self.tasks.shutdown().await;
        // The agents' goodbyes above end their sessions: on the record before the end.
        let closing = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || closing.close_audit()).await;
    }
}

/// QUIC on `listen` (UDP) and TCP on the same port number. With port 0 the system picks the
/// UDP port, and a TCP socket may already hold that number: pick again rather than fail.
async fn bind_signaling(
    id: &Identity,
    listen: SocketAddr,
) -> Result<(quinn::Endpoint, tokio::net::TcpListener)> {
    let mut tries = if listen.port() == 0 { 20 } else { 1 };
    loop {
        tries -= 1;
        let endpoint = quinn::Endpoint::server(transport::config::relay_server_config(id)?, listen)
            .with_context(|| format!("cannot listen on UDP {listen}: is the port in use, or does it need root (ports below 1024)?"))?;
        let tcp_addr = SocketAddr::new(listen.ip(), endpoint.local_addr()?.port());
        match tokio::net::TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((endpoint, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries > 0 => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot listen on TCP {tcp_addr}: is the port in use?")
                })
            }
        }
    }
}

/// Accepts QUIC signaling connections: admitted (Retry, per-address bounds) before any
/// handshake work, each served by a task this loop owns.
async fn accept_quic(
    endpoint: quinn::Endpoint,
    admission: admission::Admission,
    state: Arc<rendezvous::Rendezvous>,
    hello_timeout: Duration,
) {
    let mut connections = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while connections.try_join_next().is_some() {}
        let Some((incoming, ticket)) = admission.admit_quic(incoming) else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            // Held until the connection ends: counts it against its address.
            let _ticket = ticket;
            match tokio::time::timeout(hello_timeout, incoming).await {
                Ok(Ok(conn)) => state.serve(conn).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                Err(_) => tracing::debug!("handshake timed out"),
            }
        });
    }
}

/// What /readyz and /metrics ask of the running relay.
fn ops_hooks(
    ready: &Arc<AtomicBool>,
    state: &Arc<rendezvous::Rendezvous>,
) -> ops_listener::OpsHooks {
    let (ready, probe, waiting) = (ready.clone(), state.clone(), state.clone());
    ops_listener::OpsHooks {
        not_ready: Box::new(move || {
            if !ready.load(Ordering::Relaxed) {
                return Some("shutting down");
            }
            probe.audit_trouble()
        }),
        refresh: Box::new(move || {
            metrics::metrics()
                .agents_waiting
                .set(waiting.waiting_agents() as i64);
        }),
    }
}
