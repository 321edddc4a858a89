//! The IO around [`PairingTable`]: one task per connection reads its signaling stream, asks the
//! table what a message means, and carries that out: passing pairing messages on unread,
//! telling the other side, admitting the endpoint ids the two sides name for their pairing to
//! the path service, and writing the audit log (session start, the paths it took, its end).
//!
//! The signaling stream is the same whether it arrived over QUIC or over TLS on TCP.

use crate::limits::Limits;
use crate::pairing_table::{AgentAnswer, AgentId, PairingId, PairingTable, Route, Verdict};
use crate::path_service::{AdmittedEndpoint, SessionAdmission};
use crate::staff::StaffCache;
use audit::record::{AuditRecord, ConsentChange, EndKind, GrantKind, RefusalKind, Side};
use audit::AuditLog;
use protocol::ids::TicketNumber;
use protocol::signaling::{FromRelay, Refusal, ToRelay, MAX_SIGNALING_LEN};
use quinn::Connection;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use transport::framed::{send_frame, FramedRecv};
use transport::relay_client::{SignalRecv, SignalSend};

type Recv = FramedRecv<SignalRecv>;

/// Longest wait for a client to take a signaling message before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client's connection stays open so the refusal reaches it.
const REFUSAL_GRACE: Duration = Duration::from_millis(300);
/// Messages queued for one connection's task; a peer that lets more pile up loses them.
const INBOX_DEPTH: usize = 16;
/// How often registrations and pairings are checked for expiry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Messages to an agent's task.
enum AgentInbox {
    ViewerJoined {
        pairing: PairingId,
        staff: String,
    },
    Pairing {
        pairing: PairingId,
        msg: Vec<u8>,
    },
    ViewerLeft {
        pairing: PairingId,
    },
    /// The viewer's proof completed the pairing: the session starts.
    Started {
        staff: String,
    },
    /// The viewer's verdict contradicted the agent's claim of a match.
    Unconfirmed {
        staff: String,
    },
    Expired,
}

/// Messages to a viewer's task.
enum ViewerInbox {
    Pairing(Vec<u8>),
    Succeeded,
    Failed(Refusal),
}

/// A viewer in a pairing, as the agent's task needs it.
struct ViewerLink {
    inbox: mpsc::Sender<ViewerInbox>,
}

#[derive(Default)]
struct Links {
    agents: HashMap<AgentId, mpsc::Sender<AgentInbox>>,
    viewers: HashMap<PairingId, ViewerLink>,
}

/// The relay's shared state.
pub(crate) struct Rendezvous {
    table: Mutex<PairingTable>,
    links: Mutex<Links>,
    staff: StaffCache,
    audit: AuditLog,
    /// Set when tickets are checked at registration.
    validator: Option<tickets::validation::TicketValidator>,
    limits: Limits,
    paths: Arc<SessionAdmission>,
    qad_port: u16,
    /// Audit records per address before anything is proven (registrations, bad tokens).
    budget: Mutex<crate::record_budget::RecordBudget>,
}

fn protocol_violation(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("protocol violation: {what}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rendezvous {
    /// State over `state_dir` (staff list), recording into `audit`; with a `validator`,
    /// tickets are checked at registration. Expiry needs [`Rendezvous::sweep`] to run.
    pub(crate) fn new(
        state_dir: &std::path::Path,
        limits: Limits,
        paths: Arc<SessionAdmission>,
        qad_port: u16,
        audit: AuditLog,
        validator: Option<tickets::validation::TicketValidator>,
    ) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(PairingTable::new(limits.clone())),
            links: Mutex::default(),
            staff: StaffCache::new(state_dir),
            audit,
            validator,
            limits,
            paths,
            qad_port,
            budget: Mutex::default(),
        })
    }

    /// Expires registrations and pairings and closes record windows, every
    /// [`SWEEP_INTERVAL`], while the state lives.
    pub(crate) async fn sweep(state: std::sync::Weak<Self>) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            let Some(r) = state.upgrade() else { break };
            r.sweep_once(Instant::now());
        }
    }

    /// Agents registered and waiting for a viewer.
    pub(crate) fn waiting_agents(&self) -> usize {
        self.table().waiting_agents()
    }

    /// Why the audit store does not take records, if it does not.
    pub(crate) fn audit_trouble(&self) -> Option<&'static str> {
        self.audit.trouble()
    }

    /// Stores every audit record so far and signs the clean-shutdown checkpoint: before the
    /// process exits.
    pub(crate) fn close_audit(&self) {
        self.audit.close();
    }

    fn table(&self) -> std::sync::MutexGuard<'_, PairingTable> {
        lock(&self.table)
    }

    /// Writes a record a stranger caused from `source`, within its address's budget; counts
    /// it otherwise. Says whether it was written.
    fn record_stranger(
        &self,
        source: std::net::IpAddr,
        ticket: Option<TicketNumber>,
        record: AuditRecord,
    ) -> bool {
        let admitted = lock(&self.budget).admit(source, record.kind(), Instant::now());
        if admitted {
            self.audit.record(ticket, record);
        }
        admitted
    }

    /// Ends lapsed registrations and pairings that ran out of time, and writes what the
    /// record budgets counted.
    fn sweep_once(&self, now: Instant) {
        for o in lock(&self.budget).close_windows(now) {
            self.audit.record(
                None,
                AuditRecord::RecordsAggregated {
                    source: o.source.map(|s| s.to_string()),
                    counts: o
                        .counts
                        .into_iter()
                        .map(|(k, n)| (k.to_owned(), n))
                        .collect(),
                    window_secs: o.window_secs,
                },
            );
        }
        let (agents, pairings) = {
            let mut t = self.table();
            (t.expired_agents(now), t.expire_pairings(now))
        };
        let links = lock(&self.links);
        for a in agents {
            if let Some(tx) = links.agents.get(&a) {
                let _ = tx.try_send(AgentInbox::Expired);
            }
        }
        for (p, a) in pairings {
            if let Some(v) = links.viewers.get(&p) {
                let _ = v.inbox.try_send(ViewerInbox::Failed(Refusal::PeerLeft));
            }
            if let Some(tx) = links.agents.get(&a) {
                let _ = tx.try_send(AgentInbox::ViewerLeft { pairing: p });
            }
        }
    }

    /// Serves one QUIC client connection until it ends; errors are that client's alone.
    pub(crate) async fn serve(self: Arc<Self>, conn: Connection) {
        let remote = conn.remote_address();
        let opened = tokio::time::timeout(self.limits.hello_timeout(), conn.accept_bi()).await;
        let (send, recv) = match opened {
            Ok(Ok(s)) => s,
            _ => {
                tracing::info!(%remote, "client disconnected: no stream opened");
                conn.close(1u32.into(), b"protocol violation");
                return;
            }
        };
        match self
            .serve_stream(remote, Box::new(send), Box::new(recv))
            .await
        {
            // The client closes once it has read the last answer (a refusal, say).
            Ok(()) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            }
            Err(e) => {
                tracing::info!(%remote, reason = %e, "client disconnected");
                // Closing drops unsent stream data: give the refusal a moment to arrive.
                let _ = tokio::time::timeout(REFUSAL_GRACE, conn.closed()).await;
                conn.close(1u32.into(), b"protocol violation");
            }
        }
    }

    /// Serves one signaling stream (over QUIC or TCP) from `remote` until it ends.
    pub(crate) async fn serve_stream(
        self: &Arc<Self>,
        remote: SocketAddr,
        mut send: SignalSend,
        recv: SignalRecv,
    ) -> anyhow::Result<()> {
        let hello_timeout = self.limits.hello_timeout();
        let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
        let hello = match tokio::time::timeout(hello_timeout, recv.next()).await {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return Err(protocol_violation("stream ended before hello")),
            Ok(Err(e)) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation(e));
            }
            Err(_) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation("no hello in time"));
            }
        };
        let hello = match ToRelay::decode(&hello) {
            Ok(h) => h,
            Err(e) => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation(e));
            }
        };
        let version = match &hello {
            ToRelay::RegisterAgent { version, .. } | ToRelay::JoinAsViewer { version, .. } => {
                *version
            }
            _ => {
                refuse(&mut send, Refusal::ProtocolViolation).await?;
                return Err(protocol_violation("first message is not a hello"));
            }
        };
        if version != protocol::PROTOCOL_VERSION {
            let relay_version = protocol::PROTOCOL_VERSION;
            return refuse(&mut send, Refusal::VersionMismatch { relay_version }).await;
        }
        match hello {
            ToRelay::RegisterAgent {
                ticket,
                host_name,
                agent_version,
                ..
            } => {
                self.agent(remote, send, recv, ticket, host_name, agent_version)
                    .await
            }
            ToRelay::JoinAsViewer {
                token,
                ticket,
                host_name,
                ..
            } => {
                self.viewer(remote, send, recv, token.0, ticket, host_name)
                    .await
            }
            _ => unreachable!("checked above"),
        }
    }

    async fn agent(
        self: &Arc<Self>,
        remote: SocketAddr,
        mut send: SignalSend,
        mut recv: Recv,
        ticket: TicketNumber,
        host: String,
        agent_version: String,
    ) -> anyhow::Result<()> {
        if let Some(refusal) = self.check_ticket(ticket, remote.ip()).await {
            tracing::info!(%ticket, host = %host, reason = ?refusal, "registration refused by the ticket system");
            return refuse(&mut send, refusal).await;
        }
        let registered = self
            .table()
            .register(ticket, &host, remote.ip(), Instant::now());
        let id = match registered {
            Ok(id) => id,
            Err(r) => {
                tracing::info!(%ticket, host = %host, reason = ?r, "registration refused");
                return refuse(&mut send, r).await;
            }
        };
        let (tx, mut inbox) = mpsc::channel(INBOX_DEPTH);
        lock(&self.links).agents.insert(id, tx);
        tracing::info!(%ticket, host = %host, "agent registered");
        // An agent proves nothing by registering: its records come out of its address's budget,
        // and its leaving is recorded if its coming was.
        let recorded = self.record_stranger(
            remote.ip(),
            Some(ticket),
            AuditRecord::AgentRegistered {
                host: host.clone(),
                agent_version,
                source: remote.ip().to_string(),
            },
        );
        let renew_within_secs = self.limits.registration_ttl().as_secs() as u32;
        let result = match timely(send_frame(
            &mut send,
            &FromRelay::AgentRegistered { renew_within_secs }.encode(),
        ))
        .await
        {
            Ok(()) => {
                self.agent_loop(&mut send, &mut recv, &mut inbox, (ticket, id, &host))
                    .await
            }
            Err(e) => Err(e),
        };
        let pairing = self.table().remove_agent(id);
        {
            let mut links = lock(&self.links);
            links.agents.remove(&id);
            if let Some(v) = pairing.and_then(|p| links.viewers.get(&p)) {
                let _ = v.inbox.try_send(ViewerInbox::Failed(Refusal::PeerLeft));
            }
        }
        tracing::info!(%ticket, host = %host, "agent left");
        if recorded {
            self.audit
                .record(Some(ticket), AuditRecord::AgentLeft { host: host.clone() });
        }
        result
    }

    async fn agent_loop(
        self: &Arc<Self>,
        send: &mut SignalSend,
        recv: &mut Recv,
        inbox: &mut mpsc::Receiver<AgentInbox>,
        (ticket, id, host): (TicketNumber, AgentId, &str),
    ) -> anyhow::Result<()> {
        // Set once the session runs.
        let mut session: Option<SessionRecord> = None;
        // The pairing the agent was last told of, and the endpoint it named for it.
        let mut current: Option<PairingId> = None;
        // The endpoint admitted for the current pairing (one per pairing), and that pairing.
        let mut _admitted: Option<(PairingId, AdmittedEndpoint)> = None;
        let mut stale = StaleBudget::default();
        loop {
            tokio::select! {
                frame = recv.next() => {
                    // A lost connection ends things just like a clean close: record it the same way.
                    let Some(frame) = frame.unwrap_or(None) else {
                        if let Some(s) = session.take() {
                            self.record_end(ticket, host, s);
                        }
                        return Ok(());
                    };
                    let msg = match ToRelay::decode(&frame) {
                        Ok(m) => m,
                        Err(e) => {
                            if let Some(s) = session.take() {
                                self.record_end(ticket, host, s);
                            }
                            return Err(protocol_violation(e));
                        }
                    };
                    if let Some(s) = &mut session {
                        if let Err(e) = self.session_report(ticket, host, s, msg) {
                            if let Some(s) = session.take() {
                                self.record_end(ticket, host, s);
                            }
                            return Err(e);
                        }
                        continue;
                    }
                    match msg {
                        ToRelay::AdmitEndpoint { pairing, id: endpoint } => {
                            if current != Some(pairing) {
                                return Err(protocol_violation("endpoint for a pairing the agent is not in"));
                            }
                            if _admitted.as_ref().is_some_and(|(p, _)| *p == pairing) {
                                return Err(protocol_violation("a second endpoint for one pairing"));
                            }
                            _admitted = Some((pairing, self.paths.admit(&endpoint).ok_or_else(|| protocol_violation("invalid endpoint id"))?));
                            timely(send_frame(send, &FromRelay::EndpointAdmitted { pairing, qad_port: self.qad_port }.encode())).await?;
                        }
                        ToRelay::Pairing { pairing, msg } => {
                            match self.table().message_from_agent(id, pairing).map_err(protocol_violation)? {
                                Route::Forward => self.to_viewer(pairing, ViewerInbox::Pairing(msg)),
                                Route::Drop => stale.spend()?,
                            }
                        }
                        ToRelay::PairingOutcome { pairing, proof } => {
                            let answer = proof.map_or(AgentAnswer::WrongCode, AgentAnswer::Proved);
                            let verdict = self.table().agent_answer(id, pairing, answer).map_err(protocol_violation)?;
                            match verdict {
                                Verdict::Started { staff } => {
                                    let Some(v) = lock(&self.links).viewers.remove(&pairing) else {
                                        // The viewer left in the same moment: the agent waits again.
                                        self.table().session_abandoned(id);
                                        timely(send_frame(send, &FromRelay::ViewerLeft { pairing }.encode())).await?;
                                        continue;
                                    };
                                    let _ = v.inbox.try_send(ViewerInbox::Succeeded);
                                    session = Some(self.session_started(send, ticket, host, staff).await?);
                                }
                                Verdict::Unconfirmed { staff } => {
                                    self.to_viewer(pairing, ViewerInbox::Failed(Refusal::PairingUnconfirmed));
                                    return self.pairing_unconfirmed(send, ticket, host, staff).await;
                                }
                                Verdict::Wrong { staff } => {
                                    tracing::info!(%ticket, host, staff = %staff, "wrong session code");
                                    crate::metrics::metrics().wrong_codes.inc();
                                    self.audit.record(Some(ticket), AuditRecord::WrongCode { host: host.to_owned(), staff: staff.clone() });
                                    self.to_viewer(pairing, ViewerInbox::Failed(Refusal::WrongCode));
                                }
                                Verdict::Stale => stale.spend()?,
                                Verdict::Deferred | Verdict::Pending => {}
                            }
                        }
                        ToRelay::PairingDeferred { pairing, retry_after_secs } => {
                            match self.table().agent_answer(id, pairing, AgentAnswer::Deferred).map_err(protocol_violation)? {
                                Verdict::Deferred => {
                                    tracing::info!(%ticket, host, retry_after_secs, "agent put a try off");
                                    self.to_viewer(pairing, ViewerInbox::Failed(Refusal::TooManyAttempts { retry_after_secs: retry_after_secs.max(1) }));
                                }
                                _ => stale.spend()?,
                            }
                        }
                        ToRelay::Renew => self.table().renew(id, Instant::now()).map_err(protocol_violation)?,
                        other => return Err(protocol_violation(format!("unexpected {}", message_kind(&other)))),
                    }
                }
                msg = inbox.recv() => match msg {
                    Some(AgentInbox::ViewerJoined { pairing, staff }) => {
                        current = Some(pairing);
                        stale.allow_for_pairing();
                        timely(send_frame(send, &FromRelay::ViewerJoined { pairing, staff_name: staff }.encode())).await?;
                    }
                    Some(AgentInbox::Pairing { pairing, msg }) => {
                        timely(send_frame(send, &FromRelay::Pairing { pairing, msg }.encode())).await?;
                    }
                    Some(AgentInbox::ViewerLeft { pairing }) => {
                        timely(send_frame(send, &FromRelay::ViewerLeft { pairing }.encode())).await?;
                    }
                    Some(AgentInbox::Started { staff }) => {
                        session = Some(self.session_started(send, ticket, host, staff).await?);
                    }
                    Some(AgentInbox::Unconfirmed { staff }) => {
                        return self.pairing_unconfirmed(send, ticket, host, staff).await;
                    }
                    Some(AgentInbox::Expired) => {
                        tracing::info!(%ticket, host, "registration expired");
                        return refuse(send, Refusal::RegistrationExpired).await;
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    /// Both proofs matched: puts the session on the record and tells the agent.
    async fn session_started(
        &self,
        send: &mut SignalSend,
        ticket: TicketNumber,
        host: &str,
        staff: String,
    ) -> anyhow::Result<SessionRecord> {
        tracing::info!(%ticket, host, staff = %staff, "session started");
        self.audit.record(
            Some(ticket),
            AuditRecord::SessionStarted {
                host: host.to_owned(),
                staff: staff.clone(),
            },
        );
        let record = SessionRecord::new(staff);
        timely(send_frame(send, &FromRelay::PairingSucceeded.encode())).await?;
        Ok(record)
    }

    /// The agent claimed a match the viewer does not confirm: on the record, and the agent is
    /// disconnected (an honest agent registers again).
    async fn pairing_unconfirmed(
        &self,
        send: &mut SignalSend,
        ticket: TicketNumber,
        host: &str,
        staff: String,
    ) -> anyhow::Result<()> {
        tracing::warn!(%ticket, host, staff = %staff, "pairing unconfirmed: the agent's claim of a match has no matching proof from the viewer");
        self.audit.record(
            Some(ticket),
            AuditRecord::PairingUnconfirmed {
                host: host.to_owned(),
                staff,
            },
        );
        refuse(send, Refusal::ProtocolViolation).await?;
        Err(protocol_violation(
            "claimed a code match the viewer does not confirm",
        ))
    }

    fn to_viewer(&self, pairing: PairingId, m: ViewerInbox) {
        if let Some(v) = lock(&self.links).viewers.get(&pairing) {
            let _ = v.inbox.try_send(m);
        }
    }

    fn to_agent(&self, agent: AgentId, m: AgentInbox) {
        if let Some(tx) = lock(&self.links).agents.get(&agent) {
            let _ = tx.try_send(m);
        }
    }

    /// Asks the ticket system whether the ticket may have a session; `None` lets the agent
    /// register.
    async fn check_ticket(&self, ticket: TicketNumber, from: std::net::IpAddr) -> Option<Refusal> {
        self.validator.as_ref()?.check(ticket, from).await
    }

    /// Writes a path the session took into the session record.
    fn record_path(
        &self,
        ticket: TicketNumber,
        host: &str,
        staff: &str,
        side: Side,
        path: protocol::peer::PathKind,
        rtt_ms: u32,
    ) {
        tracing::info!(%ticket, host, ?side, %path, rtt_ms, "session path");
        self.audit.record(
            Some(ticket),
            AuditRecord::PathChanged {
                host: host.to_owned(),
                staff: staff.to_owned(),
                side,
                path: path.into(),
                rtt_ms,
            },
        );
    }

    /// Takes a report the agent sends while its session runs: path, consent, end.
    fn session_report(
        &self,
        ticket: TicketNumber,
        host: &str,
        s: &mut SessionRecord,
        msg: ToRelay,
    ) -> anyhow::Result<()> {
        s.reports += 1;
        if s.reports > MAX_SESSION_REPORTS {
            return Err(protocol_violation("too many session reports"));
        }
        match msg {
            ToRelay::PathReport { path, rtt_ms } => {
                s.running.on_path(path);
                self.record_path(ticket, host, &s.staff, Side::Agent, path, rtt_ms);
            }
            ToRelay::ConsentReport { grant } => {
                let grant = GrantKind::from(grant);
                let change = match (s.grant, grant) {
                    (None, GrantKind::Nothing) => ConsentChange::Refused,
                    (None, _) => ConsentChange::Given,
                    (Some(_), GrantKind::Nothing) => ConsentChange::Revoked,
                    (Some(_), _) => ConsentChange::Changed,
                };
                if s.grant == Some(GrantKind::Nothing) {
                    return Err(protocol_violation("consent after it was withdrawn"));
                }
                s.grant = Some(grant);
                tracing::info!(%ticket, host, ?change, ?grant, "consent");
                self.audit.record(
                    Some(ticket),
                    AuditRecord::Consent {
                        host: host.to_owned(),
                        staff: s.staff.clone(),
                        change,
                        grant,
                    },
                );
            }
            ToRelay::EndReport {
                reason,
                bytes_sent,
                bytes_received,
            } => {
                if s.end.is_some() {
                    return Err(protocol_violation("a second end report"));
                }
                s.end = Some((reason.into(), bytes_sent, bytes_received));
            }
            _ => return Err(protocol_violation("signaling after the session started")),
        }
        Ok(())
    }

    /// Writes the end of a session: the agent's report, or a lost connection.
    fn record_end(&self, ticket: TicketNumber, host: &str, s: SessionRecord) {
        let (reason, sent, received) = match s.end {
            Some((r, tx, rx)) => (r, Some(tx), Some(rx)),
            None => (EndKind::ConnectionLost, None, None),
        };
        let duration_s = s.start.elapsed().as_secs();
        tracing::info!(%ticket, host, staff = %s.staff, ?reason, duration_s, "session ended");
        crate::metrics::metrics().session_ended(crate::metrics::end_name(reason));
        self.audit.record(
            Some(ticket),
            AuditRecord::SessionEnded {
                host: host.to_owned(),
                staff: s.staff,
                reason,
                duration_s,
                agent_bytes_sent: sent,
                agent_bytes_received: received,
            },
        );
    }

    async fn viewer(
        self: &Arc<Self>,
        remote: SocketAddr,
        mut send: SignalSend,
        mut recv: Recv,
        token: String,
        ticket: TicketNumber,
        host: Option<String>,
    ) -> anyhow::Result<()> {
        let Some(staff) = self.staff.authenticate(token).await else {
            tracing::info!(%ticket, "viewer refused: bad staff token");
            self.record_stranger(
                remote.ip(),
                Some(ticket),
                AuditRecord::ViewerRefused {
                    staff: None,
                    reason: RefusalKind::BadStaffToken,
                },
            );
            return refuse(&mut send, Refusal::BadStaffToken).await;
        };
        let joined = self
            .table()
            .join(ticket, host.as_deref(), &staff, Instant::now());
        let joined = match joined {
            Ok(j) => j,
            Err(r) => {
                tracing::info!(%ticket, staff = %staff, reason = ?r, "viewer refused");
                self.audit.record(
                    Some(ticket),
                    AuditRecord::ViewerRefused {
                        staff: Some(staff.clone()),
                        reason: RefusalKind::from(&r),
                    },
                );
                return refuse(&mut send, r).await;
            }
        };
        let pairing = joined.pairing;
        let (tx, mut inbox) = mpsc::channel(INBOX_DEPTH);
        lock(&self.links)
            .viewers
            .insert(pairing, ViewerLink { inbox: tx });
        let result = self
            .viewer_loop(&mut send, &mut recv, &mut inbox, (ticket, &joined), &staff)
            .await;
        lock(&self.links).viewers.remove(&pairing);
        let left = self.table().viewer_left(pairing);
        if let Some(agent) = left {
            self.to_agent(agent, AgentInbox::ViewerLeft { pairing });
        }
        result
    }

    async fn viewer_loop(
        self: &Arc<Self>,
        send: &mut SignalSend,
        recv: &mut Recv,
        inbox: &mut mpsc::Receiver<ViewerInbox>,
        (ticket, joined): (TicketNumber, &crate::pairing_table::Joined),
        staff: &str,
    ) -> anyhow::Result<()> {
        let pairing = joined.pairing;
        tracing::info!(host = %joined.host, staff = %staff, pairing, "viewer joined, pairing");
        self.audit.record(
            Some(ticket),
            AuditRecord::ViewerJoined {
                host: joined.host.clone(),
                staff: staff.to_owned(),
            },
        );
        self.to_agent(
            joined.agent,
            AgentInbox::ViewerJoined {
                pairing,
                staff: staff.to_owned(),
            },
        );
        timely(send_frame(
            send,
            &FromRelay::AgentChosen {
                pairing,
                host_name: joined.host.clone(),
                staff_name: staff.to_owned(),
            }
            .encode(),
        ))
        .await?;
        // The sweeper ends pairings that run out of time; this deadline also covers a pairing
        // whose agent vanished before this task was listed.
        let deadline = tokio::time::sleep(self.limits.pairing_timeout() + SWEEP_INTERVAL * 2);
        tokio::pin!(deadline);
        let mut _admitted: Option<AdmittedEndpoint> = None;
        let mut started = false;
        let mut reports = 0u32;
        loop {
            tokio::select! {
                _ = &mut deadline, if !started => return refuse(send, Refusal::PeerLeft).await,
                frame = recv.next() => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) | Err(_) => return Ok(()),
                    };
                    let route = match ToRelay::decode(&frame) {
                        Ok(ToRelay::PathReport { path, rtt_ms }) if started => {
                            reports += 1;
                            if reports > MAX_SESSION_REPORTS {
                                refuse(send, Refusal::ProtocolViolation).await?;
                                return Err(protocol_violation("too many session reports"));
                            }
                            self.record_path(ticket, &joined.host, staff, Side::Viewer, path, rtt_ms);
                            continue;
                        }
                        Ok(ToRelay::AdmitEndpoint { pairing: p, id }) if p == pairing && !started && _admitted.is_none() => {
                            _admitted = Some(self.paths.admit(&id).ok_or_else(|| protocol_violation("invalid endpoint id"))?);
                            timely(send_frame(send, &FromRelay::EndpointAdmitted { pairing, qad_port: self.qad_port }.encode())).await?;
                            continue;
                        }
                        Ok(_) if started => Err("signaling after the session started".to_owned()),
                        Ok(ToRelay::PairingOutcome { pairing: p, proof }) => {
                            let verdict = self.table().viewer_answer(pairing, p, proof);
                            match verdict {
                                Ok(Verdict::Started { staff }) => {
                                    lock(&self.links).viewers.remove(&pairing);
                                    self.to_agent(joined.agent, AgentInbox::Started { staff });
                                    timely(send_frame(send, &FromRelay::PairingSucceeded.encode())).await?;
                                    started = true;
                                    continue;
                                }
                                Ok(Verdict::Unconfirmed { staff }) => {
                                    self.to_agent(joined.agent, AgentInbox::Unconfirmed { staff });
                                    return refuse(send, Refusal::PairingUnconfirmed).await;
                                }
                                Ok(_) => continue,
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Ok(ToRelay::Pairing { pairing: p, msg }) => {
                            self.table().message_from_viewer(pairing, p).map(|r| (r, msg)).map_err(|e| e.to_string())
                        }
                        Ok(m) => Err(format!("unexpected {}", message_kind(&m))),
                        Err(e) => Err(e.to_string()),
                    };
                    match route {
                        Ok((Route::Forward, msg)) => self.to_agent(joined.agent, AgentInbox::Pairing { pairing, msg }),
                        Ok((Route::Drop, _)) => {}
                        Err(e) => {
                            refuse(send, Refusal::ProtocolViolation).await?;
                            return Err(protocol_violation(e));
                        }
                    }
                }
                msg = inbox.recv(), if !started => match msg {
                    Some(ViewerInbox::Pairing(msg)) => timely(send_frame(send, &FromRelay::Pairing { pairing, msg }.encode())).await?,
                    Some(ViewerInbox::Succeeded) => {
                        timely(send_frame(send, &FromRelay::PairingSucceeded.encode())).await?;
                        // From here on only path reports come, until the viewer closes.
                        started = true;
                    }
                    Some(ViewerInbox::Failed(r)) => return refuse(send, r).await,
                    None => return refuse(send, Refusal::PeerLeft).await,
                },
            }
        }
    }
}

/// Messages about pairings that are over (they crossed the pairing's end) an agent may send:
/// a few per pairing it was told of. More is a peer spending the table's lock for nothing.
#[derive(Default)]
struct StaleBudget {
    left: u32,
}

impl StaleBudget {
    /// Messages that may cross the end of one pairing: its SPAKE2 message, its confirmation,
    /// and its verdict or deferral.
    const PER_PAIRING: u32 = 3;

    fn allow_for_pairing(&mut self) {
        self.left = (self.left + Self::PER_PAIRING).min(Self::PER_PAIRING * 2);
    }

    fn spend(&mut self) -> anyhow::Result<()> {
        self.left = self
            .left
            .checked_sub(1)
            .ok_or_else(|| protocol_violation("messages for pairings that are over"))?;
        Ok(())
    }
}

/// Reports one side may send during a session: paths change a few times, consent a few
/// times; more is a peer filling the audit store.
const MAX_SESSION_REPORTS: u32 = 256;

/// A running session as the agent's side of the relay keeps it for the record.
struct SessionRecord {
    staff: String,
    start: Instant,
    grant: Option<GrantKind>,
    end: Option<(EndKind, u64, u64)>,
    reports: u32,
    /// Counts the session in the metrics while it runs.
    running: crate::metrics::RunningSession,
}

impl SessionRecord {
    fn new(staff: String) -> Self {
        Self {
            staff,
            start: Instant::now(),
            grant: None,
            end: None,
            reports: 0,
            running: crate::metrics::RunningSession::start(),
        }
    }
}

fn message_kind(m: &ToRelay) -> &'static str {
    match m {
        ToRelay::RegisterAgent { .. } => "registration",
        ToRelay::JoinAsViewer { .. } => "viewer hello",
        ToRelay::Pairing { .. } => "pairing message",
        ToRelay::PairingOutcome { .. } => "pairing outcome",
        ToRelay::PairingDeferred { .. } => "pairing deferral",
        ToRelay::Renew => "renewal",
        ToRelay::AdmitEndpoint { .. } => "endpoint",
        ToRelay::PathReport { .. } => "path report",
        ToRelay::ConsentReport { .. } => "consent report",
        ToRelay::EndReport { .. } => "end report",
    }
}

/// A write to a client that must not hang on a client that stops reading.
async fn timely(
    write: impl std::future::Future<Output = Result<(), transport::TransportError>>,
) -> anyhow::Result<()> {
    tokio::time::timeout(SEND_TIMEOUT, write)
        .await
        .map_err(|_| anyhow::anyhow!("client stopped reading"))??;
    Ok(())
}

async fn refuse(send: &mut SignalSend, r: Refusal) -> anyhow::Result<()> {
    crate::metrics::metrics().refused(&r);
    timely(send_frame(send, &FromRelay::Refused(r).encode())).await?;
    // Finishing the stream lets the refusal arrive before the connection is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(2), send.shutdown()).await;
    Ok(())
}
