//! Pairing agents and viewers by ticket, and forwarding their end-to-end packets.
//!
//! Each agent connection gets a task that owns its signaling stream; a viewer's task finds the
//! agent in the [`Rendezvous`] table and talks to that task through channels. The relay passes
//! pairing messages on unread; once the agent reports that the code matched, it forwards the
//! QUIC datagrams of the two connections to each other and reads none of them.

use crate::audit::{AuditEvent, AuditLog};
use crate::staff::StaffRegistry;
use crate::throttle::CodeThrottle;
use protocol::ids::TicketNumber;
use protocol::signaling::{FromRelay, Refusal, ToRelay, MAX_SIGNALING_LEN};
use quinn::{Connection, SendStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use transport::framed::{send_frame, FramedRecv};

/// Agents that may wait under one ticket (a classroom incident, not a whole school).
const MAX_AGENTS_PER_TICKET: usize = 16;
/// Agents the relay keeps waiting at once.
const MAX_AGENTS: usize = 10_000;
/// Pairing messages each side may send in one pairing (SPAKE2 and confirmation: 2).
const MAX_PAIRING_MESSAGES: u32 = 2;
/// A client must say who it is this fast after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A pairing must finish this fast after the viewer joined.
const PAIRING_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages to an agent's task.
enum AgentInbox {
    ViewerJoined { staff: String, viewer: ViewerLink },
    Pairing(Vec<u8>),
    ViewerLeft,
}

/// Messages to a viewer's task.
enum ViewerInbox {
    Pairing(Vec<u8>),
    Succeeded,
    Failed(Refusal),
}

struct ViewerLink {
    inbox: mpsc::Sender<ViewerInbox>,
    conn: Connection,
}

struct WaitingAgent {
    id: u64,
    host: String,
    busy: bool,
    inbox: mpsc::Sender<AgentInbox>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    agents: HashMap<TicketNumber, Vec<WaitingAgent>>,
    throttle: CodeThrottle,
}

/// The relay's shared state.
pub struct Rendezvous {
    table: Mutex<Table>,
    staff_dir: std::path::PathBuf,
    audit: AuditLog,
}

fn protocol_violation(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("protocol violation: {what}")
}

impl Rendezvous {
    /// State over `state_dir` (staff list, audit log).
    pub fn new(state_dir: &std::path::Path) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            table: Mutex::new(Table::default()),
            staff_dir: state_dir.to_owned(),
            audit: AuditLog::open(state_dir)?,
        }))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves one client connection until it ends; errors are that client's alone.
    pub async fn serve(self: Arc<Self>, conn: Connection) {
        let remote = conn.remote_address();
        if let Err(e) = self.serve_inner(&conn).await {
            tracing::info!(%remote, reason = %e, "client disconnected");
            conn.close(1u32.into(), b"protocol violation");
        }
    }

    async fn serve_inner(self: &Arc<Self>, conn: &Connection) -> anyhow::Result<()> {
        let (mut send, recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| protocol_violation("no stream opened"))??;
        let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, recv.next()).await {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return Err(protocol_violation("stream ended before hello")),
            Ok(Err(e)) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation(e));
            }
            Err(_) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation("no hello within 10 s"));
            }
        };
        let version = match ToRelay::decode(&hello) {
            Ok(ToRelay::RegisterAgent { version, .. } | ToRelay::JoinAsViewer { version, .. }) => {
                version
            }
            _ => protocol::PROTOCOL_VERSION,
        };
        if version != protocol::PROTOCOL_VERSION {
            let relay_version = protocol::PROTOCOL_VERSION;
            return refuse(&mut send, Refusal::VersionMismatch { relay_version }).await;
        }
        match ToRelay::decode(&hello) {
            Ok(ToRelay::RegisterAgent {
                ticket, host_name, ..
            }) => self.agent(conn, send, recv, ticket, host_name).await,
            Ok(ToRelay::JoinAsViewer {
                token,
                ticket,
                host_name,
                ..
            }) => {
                self.viewer(conn, send, recv, &token.0, ticket, host_name)
                    .await
            }
            Ok(_) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                Err(protocol_violation("first message is not a hello"))
            }
            Err(e) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                Err(protocol_violation(e))
            }
        }
    }

    async fn agent(
        self: &Arc<Self>,
        conn: &Connection,
        mut send: SendStream,
        mut recv: FramedRecv,
        ticket: TicketNumber,
        host: String,
    ) -> anyhow::Result<()> {
        let (tx, mut inbox) = mpsc::channel(8);
        let id = {
            let mut t = self.table();
            let total: usize = t.agents.values().map(Vec::len).sum();
            let waiting = t.agents.get(&ticket).map_or(0, Vec::len);
            if total >= MAX_AGENTS || waiting >= MAX_AGENTS_PER_TICKET {
                None
            } else {
                t.next_id += 1;
                let id = t.next_id;
                t.agents.entry(ticket).or_default().push(WaitingAgent {
                    id,
                    host: host.clone(),
                    busy: false,
                    inbox: tx,
                });
                Some(id)
            }
        };
        let Some(id) = id else {
            return refuse(&mut send, Refusal::Overloaded).await;
        };
        tracing::info!(%ticket, host = %host, "agent registered");
        self.audit
            .record(AuditEvent::AgentRegistered, ticket, Some(&host), None, None);
        send_frame(&mut send, &FromRelay::AgentRegistered.encode()).await?;
        let result = self
            .agent_loop(conn, &mut send, &mut recv, &mut inbox, (ticket, id, &host))
            .await;
        {
            let mut t = self.table();
            if let Some(list) = t.agents.get_mut(&ticket) {
                list.retain(|a| a.id != id);
                if list.is_empty() {
                    t.agents.remove(&ticket);
                }
            }
        }
        tracing::info!(%ticket, host = %host, "agent left");
        self.audit
            .record(AuditEvent::AgentLeft, ticket, Some(&host), None, None);
        result
    }

    /// Lets the next viewer pair with this agent again; found by id, as host names can repeat.
    fn release(&self, ticket: TicketNumber, id: u64) {
        if let Some(a) = self
            .table()
            .agents
            .get_mut(&ticket)
            .and_then(|l| l.iter_mut().find(|a| a.id == id))
        {
            a.busy = false;
        }
    }

    async fn agent_loop(
        self: &Arc<Self>,
        conn: &Connection,
        send: &mut SendStream,
        recv: &mut FramedRecv,
        inbox: &mut mpsc::Receiver<AgentInbox>,
        (ticket, id, host): (TicketNumber, u64, &str),
    ) -> anyhow::Result<()> {
        let mut viewer: Option<(ViewerLink, String)> = None;
        let mut viewer_gone = false;
        let mut sent = 0u32;
        let mut tunnelled: Option<Instant> = None;
        loop {
            tokio::select! {
                frame = recv.next() => {
                    // A lost connection ends things just like a clean close: record it the same way.
                    let Some(frame) = frame.unwrap_or(None) else {
                        if let Some((v, staff)) = viewer.take() {
                            if let Some(start) = tunnelled {
                                self.audit.record(AuditEvent::SessionEnded, ticket, Some(host), Some(&staff), Some(&format!("duration_s={}", start.elapsed().as_secs())));
                            } else {
                                let _ = v.inbox.send(ViewerInbox::Failed(Refusal::PeerLeft)).await;
                            }
                        }
                        return Ok(());
                    };
                    match ToRelay::decode(&frame).map_err(protocol_violation)? {
                        ToRelay::Pairing(b) if tunnelled.is_none() && sent < MAX_PAIRING_MESSAGES => {
                            let Some((v, _)) = &viewer else { return Err(protocol_violation("pairing message without a viewer")) };
                            sent += 1;
                            if !viewer_gone {
                                let _ = v.inbox.send(ViewerInbox::Pairing(b)).await;
                            }
                        }
                        ToRelay::PairingOutcome { code_matched } if tunnelled.is_none() => {
                            let Some((v, staff)) = viewer.take() else { return Err(protocol_violation("pairing outcome without a viewer")) };
                            if code_matched && viewer_gone {
                                tracing::info!(%ticket, host, staff = %staff, "viewer left right after pairing");
                                self.release(ticket, id);
                            } else if code_matched {
                                tracing::info!(%ticket, host, staff = %staff, "session started (relayed)");
                                self.audit.record(AuditEvent::SessionStarted, ticket, Some(host), Some(&staff), Some("path=relayed"));
                                forward_datagrams(conn.clone(), v.conn.clone());
                                forward_datagrams(v.conn.clone(), conn.clone());
                                let _ = v.inbox.send(ViewerInbox::Succeeded).await;
                                tunnelled = Some(Instant::now());
                                viewer = Some((v, staff));
                            } else {
                                tracing::info!(%ticket, host, staff = %staff, "wrong session code");
                                self.audit.record(AuditEvent::WrongCode, ticket, Some(host), Some(&staff), None);
                                self.table().throttle.failed(ticket, Instant::now());
                                self.release(ticket, id);
                                let _ = v.inbox.send(ViewerInbox::Failed(Refusal::WrongCode)).await;
                            }
                        }
                        other => return Err(protocol_violation(format!("unexpected {}", message_kind(&other)))),
                    }
                }
                msg = inbox.recv() => match msg {
                    Some(AgentInbox::ViewerJoined { staff, viewer: link }) => {
                        send_frame(send, &FromRelay::ViewerJoined { staff_name: staff.clone() }.encode()).await?;
                        viewer = Some((link, staff));
                        viewer_gone = false;
                        sent = 0;
                    }
                    Some(AgentInbox::Pairing(b)) => send_frame(send, &FromRelay::Pairing(b).encode()).await?,
                    Some(AgentInbox::ViewerLeft) => {
                        // Keep the pairing until the agent's verdict: a viewer that leaves right
                        // after a wrong code must still be counted by the throttle.
                        if tunnelled.is_none() && viewer.is_some() && !viewer_gone {
                            viewer_gone = true;
                            self.release(ticket, id);
                            send_frame(send, &FromRelay::Refused(Refusal::PeerLeft).encode()).await?;
                        }
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    async fn viewer(
        self: &Arc<Self>,
        conn: &Connection,
        mut send: SendStream,
        mut recv: FramedRecv,
        token: &str,
        ticket: TicketNumber,
        host: Option<String>,
    ) -> anyhow::Result<()> {
        // Read the staff list per login, so `staff remove` takes effect without a restart.
        let staff = match StaffRegistry::load(&self.staff_dir)
            .ok()
            .and_then(|r| r.authenticate(token))
        {
            Some(s) => s,
            None => {
                tracing::info!(%ticket, "viewer refused: bad staff token");
                self.audit.record(
                    AuditEvent::ViewerRefused,
                    ticket,
                    None,
                    None,
                    Some("bad staff token"),
                );
                return refuse(&mut send, Refusal::BadStaffToken).await;
            }
        };
        let chosen = {
            let mut t = self.table();
            if let Some(wait) = t.throttle.wait(ticket, Instant::now()) {
                Err(Refusal::TooManyAttempts {
                    retry_after_secs: wait.as_secs().max(1) as u32,
                })
            } else {
                match t.agents.get_mut(&ticket) {
                    None => Err(Refusal::UnknownTicket),
                    Some(list) => {
                        let idx = match &host {
                            Some(h) => list
                                .iter()
                                .position(|a| &a.host == h)
                                .ok_or(Refusal::UnknownTicket),
                            None if list.len() == 1 => Ok(0),
                            None => Err(Refusal::AmbiguousAgent {
                                hosts: list.iter().map(|a| a.host.clone()).collect(),
                            }),
                        };
                        idx.and_then(|i| {
                            let a = &mut list[i];
                            if a.busy {
                                Err(Refusal::AgentBusy)
                            } else {
                                a.busy = true;
                                Ok((a.host.clone(), a.inbox.clone()))
                            }
                        })
                    }
                }
            }
        };
        let (agent_host, agent) = match chosen {
            Ok(c) => c,
            Err(r) => {
                tracing::info!(%ticket, staff = %staff, reason = ?r, "viewer refused");
                self.audit.record(
                    AuditEvent::ViewerRefused,
                    ticket,
                    host.as_deref(),
                    Some(&staff),
                    Some(&format!("{r:?}")),
                );
                return refuse(&mut send, r).await;
            }
        };
        let (tx, mut inbox) = mpsc::channel(8);
        if agent
            .send(AgentInbox::ViewerJoined {
                staff: staff.clone(),
                viewer: ViewerLink {
                    inbox: tx,
                    conn: conn.clone(),
                },
            })
            .await
            .is_err()
        {
            return refuse(&mut send, Refusal::PeerLeft).await;
        }
        tracing::info!(%ticket, host = %agent_host, staff = %staff, "viewer joined, pairing");
        send_frame(
            &mut send,
            &FromRelay::AgentChosen {
                host_name: agent_host,
            }
            .encode(),
        )
        .await?;
        let deadline = tokio::time::sleep(PAIRING_TIMEOUT);
        tokio::pin!(deadline);
        let mut sent = 0u32;
        loop {
            tokio::select! {
                frame = recv.next() => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) | Err(_) => {
                            let _ = agent.send(AgentInbox::ViewerLeft).await;
                            return Ok(());
                        }
                    };
                    match ToRelay::decode(&frame) {
                        Ok(ToRelay::Pairing(b)) if sent < MAX_PAIRING_MESSAGES => {
                            sent += 1;
                            let _ = agent.send(AgentInbox::Pairing(b)).await;
                        }
                        other => {
                            let _ = agent.send(AgentInbox::ViewerLeft).await;
                            refuse(&mut send, Refusal::ProtocolViolation).await?;
                            return Err(protocol_violation(match other { Ok(m) => format!("unexpected {}", message_kind(&m)), Err(e) => e.to_string() }));
                        }
                    }
                }
                msg = inbox.recv() => match msg {
                    Some(ViewerInbox::Pairing(b)) => send_frame(&mut send, &FromRelay::Pairing(b).encode()).await?,
                    Some(ViewerInbox::Succeeded) => {
                        send_frame(&mut send, &FromRelay::PairingSucceeded.encode()).await?;
                        // From here on only datagrams flow; the connection's end ends the session.
                        conn.closed().await;
                        return Ok(());
                    }
                    Some(ViewerInbox::Failed(r)) => return refuse(&mut send, r).await,
                    None => return refuse(&mut send, Refusal::PeerLeft).await,
                },
                _ = &mut deadline => {
                    let _ = agent.send(AgentInbox::ViewerLeft).await;
                    return refuse(&mut send, Refusal::PeerLeft).await;
                }
            }
        }
    }
}

fn message_kind(m: &ToRelay) -> &'static str {
    match m {
        ToRelay::RegisterAgent { .. } => "registration",
        ToRelay::JoinAsViewer { .. } => "viewer hello",
        ToRelay::Pairing(_) => "pairing message",
        ToRelay::PairingOutcome { .. } => "pairing outcome",
    }
}

async fn refuse(send: &mut SendStream, r: Refusal) -> anyhow::Result<()> {
    send_frame(send, &FromRelay::Refused(r).encode()).await?;
    let _ = send.finish();
    // Give the refusal time to arrive before the connection is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    Ok(())
}

/// Copies every datagram from one connection to the other until either ends.
fn forward_datagrams(from: Connection, to: Connection) {
    tokio::spawn(async move {
        while let Ok(d) = from.read_datagram().await {
            match to.send_datagram(d) {
                Ok(()) | Err(quinn::SendDatagramError::TooLarge) => {}
                Err(_) => break,
            }
        }
    });
}
