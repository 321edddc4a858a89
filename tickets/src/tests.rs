//! The connectors against in-process servers built from each system's documented request and
//! response shapes, and the outbox delivering through them.

use super::test_server::TestServer;
use super::{Connector, ConnectorError, TicketState};
use audit::record::{AuditRecord, ConsentChange, EndKind, GrantKind, Lang};
use audit::report::{ReportKind, SessionReport};
use serde_json::{json, Value};

fn report(kind: ReportKind) -> SessionReport {
    let records = [
        (
            1_764_630_000,
            AuditRecord::SessionStarted {
                host: "PC-12".into(),
                staff: "Anna Schmidt".into(),
            },
        ),
        (
            1_764_630_010,
            AuditRecord::Consent {
                host: "PC-12".into(),
                staff: "Anna Schmidt".into(),
                change: ConsentChange::Given,
                grant: GrantKind::Control,
            },
        ),
        (
            1_764_630_200,
            AuditRecord::SessionEnded {
                host: "PC-12".into(),
                staff: "Anna Schmidt".into(),
                reason: EndKind::EndedAtAgent,
                duration_s: 200,
                agent_bytes_sent: Some(1_000_000),
                agent_bytes_received: Some(20_000),
            },
        ),
    ];
    let n = if kind == ReportKind::Start { 1 } else { 3 };
    SessionReport::from_records(kind, 4711, &records[..n]).unwrap()
}

fn body(r: &super::test_server::Request) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_start_report_carries_the_link_and_never_a_code() {
    let mut r = report(ReportKind::Start);
    assert!(!r.text(Lang::De).contains("fernhilfe://"));
    r.link = Some("fernhilfe://relay.schultraeger.example:443/ticket/4711".into());
    for lang in [Lang::De, Lang::En] {
        let text = r.text(lang);
        assert!(
            text.contains("fernhilfe://relay.schultraeger.example:443/ticket/4711"),
            "{text}"
        );
        assert!(!text.contains("code="), "{text}");
    }
}

#[test]
fn an_end_report_says_who_what_and_how_long() {
    let r = report(ReportKind::End);
    assert_eq!(r.minutes(), Some(4));
    let text = r.text(Lang::De);
    for part in [
        "PC: PC-12",
        "Support: Anna Schmidt",
        "Dauer: 3 min 20 s",
        "Zustimmung erteilt: ansehen und steuern",
        "am PC beendet",
    ] {
        assert!(text.contains(part), "{part} missing in:\n{text}");
    }
    assert_eq!(r.subject(Lang::En), "Fernhilfe: session with PC-12 ended");
}

#[test]
fn zammad_looks_up_the_number_and_writes_an_internal_note() {
    let server = TestServer::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", p) if p.starts_with("/api/v1/tickets/search") && p.contains("number:4711") => (
            200,
            json!([{ "id": 17, "number": "4711", "state": "open" }]).to_string(),
        ),
        ("GET", p) if p.starts_with("/api/v1/tickets/search") && p.contains("number:4712") => (
            200,
            json!([{ "id": 18, "number": "4712", "state": "closed" }]).to_string(),
        ),
        ("GET", p) if p.starts_with("/api/v1/tickets/search") => (200, "[]".into()),
        ("GET", "/api/v1/ticket_articles/by_ticket/17") => (
            200,
            json!([{ "id": 1, "subject": "Fernhilfe: Sitzung mit PC-12 beendet [k-1]" }])
                .to_string(),
        ),
        ("POST", "/api/v1/ticket_articles") => (201, json!({ "id": 99 }).to_string()),
        _ => (404, "{}".into()),
    });
    let z = super::zammad::Zammad::new(
        super::http::Http::new(None).unwrap(),
        &server.url,
        "secret-token".into(),
        Lang::De,
    )
    .unwrap();
    assert_eq!(z.ticket_state(4711).unwrap(), TicketState::Open);
    assert_eq!(z.ticket_state(4712).unwrap(), TicketState::Closed);
    assert_eq!(
        z.ticket_state(17).unwrap(),
        TicketState::Unknown,
        "an id is not a number"
    );
    z.post(&report(ReportKind::End), "k-2", false).unwrap();
    // A retry of a report that already arrived posts nothing.
    z.post(&report(ReportKind::End), "k-1", true).unwrap();
    let posts: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    let b = body(&posts[0]);
    assert_eq!(
        (
            b["ticket_id"].as_u64(),
            b["internal"].as_bool(),
            b["type"].as_str()
        ),
        (Some(17), Some(true), Some("note"))
    );
    assert_eq!(b["time_unit"], "4");
    assert!(b["subject"].as_str().unwrap().contains("[k-2]"));
    assert!(server
        .seen()
        .iter()
        .all(|r| r.header("Authorization") == Some("Token token=secret-token")));
}

#[test]
fn glpi_takes_a_session_token_and_writes_a_private_follow_up() {
    let server = TestServer::start(|r| {
        let session_ok =
            r.header("Session-Token") == Some("sess-1") && r.header("App-Token") == Some("app-1");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/apirest.php/initSession") => {
                if r.header("Authorization") == Some("user_token user-1")
                    && r.header("App-Token") == Some("app-1")
                {
                    (200, json!({ "session_token": "sess-1" }).to_string())
                } else {
                    (
                        401,
                        json!(["ERROR_LOGIN_PARAMETERS_MISSING", ""]).to_string(),
                    )
                }
            }
            _ if !session_ok => (401, json!(["ERROR_SESSION_TOKEN_INVALID", ""]).to_string()),
            ("GET", "/apirest.php/Ticket/4711") => {
                (200, json!({ "id": 4711, "status": 2 }).to_string())
            }
            ("GET", "/apirest.php/Ticket/4712") => {
                (200, json!({ "id": 4712, "status": 6 }).to_string())
            }
            ("GET", "/apirest.php/Ticket/4711/ITILFollowup") => (200, "[]".into()),
            ("POST", "/apirest.php/Ticket/4711/ITILFollowup") => {
                (201, json!({ "id": 5 }).to_string())
            }
            ("GET", "/apirest.php/killSession") => (200, "true".into()),
            _ => (404, json!(["ERROR_ITEM_NOT_FOUND", ""]).to_string()),
        }
    });
    let g = super::glpi::Glpi::new(
        super::http::Http::new(None).unwrap(),
        &format!("{}/apirest.php", server.url),
        "user-1".into(),
        Some("app-1".into()),
        Lang::De,
    )
    .unwrap();
    assert_eq!(g.ticket_state(4711).unwrap(), TicketState::Open);
    assert_eq!(g.ticket_state(4712).unwrap(), TicketState::Closed);
    assert_eq!(g.ticket_state(4713).unwrap(), TicketState::Unknown);
    g.post(&report(ReportKind::Start), "k-7", true).unwrap();
    let seen = server.seen();
    let post = seen
        .iter()
        .find(|r| r.method == "POST")
        .expect("a follow-up");
    let input = &body(post)["input"];
    assert_eq!(
        (
            input["itemtype"].as_str(),
            input["items_id"].as_u64(),
            input["is_private"].as_u64()
        ),
        (Some("Ticket"), Some(4711), Some(1))
    );
    assert!(input["content"].as_str().unwrap().contains("[k-7]"));
    // Every session opened is closed again.
    let opened = seen
        .iter()
        .filter(|r| r.path.ends_with("/initSession"))
        .count();
    let killed = seen
        .iter()
        .filter(|r| r.path.ends_with("/killSession"))
        .count();
    assert_eq!(opened, killed);
    // A wrong user token is not worth retrying.
    let bad = super::glpi::Glpi::new(
        super::http::Http::new(None).unwrap(),
        &format!("{}/apirest.php", server.url),
        "wrong".into(),
        Some("app-1".into()),
        Lang::De,
    )
    .unwrap();
    assert!(matches!(
        bad.ticket_state(4711),
        Err(ConnectorError::Permanent(_))
    ));
}

#[test]
fn a_webhook_signature_verifies_at_the_receiver_and_a_forged_one_does_not() {
    use hmac::{Hmac, Mac};
    let server = TestServer::start(|_| (200, "{}".into()));
    let w = super::webhook::Webhook::new(
        super::http::Http::new(None).unwrap(),
        &server.url,
        b"0123456789abcdef-shared".to_vec(),
    )
    .unwrap();
    w.post(&report(ReportKind::End), "k-9", false).unwrap();
    let req = &server.seen()[0];
    // The receiver's side, from the documented scheme.
    let verify = |key: &[u8], ts: &str, body: &str, sig: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let hexed = sig.strip_prefix("sha256=").unwrap();
        let bytes: Vec<u8> = (0..hexed.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hexed[i..i + 2], 16).unwrap())
            .collect();
        mac.verify_slice(&bytes).is_ok()
    };
    let (ts, sig) = (
        req.header("X-Fernhilfe-Timestamp").unwrap(),
        req.header("X-Fernhilfe-Signature").unwrap(),
    );
    assert!(verify(b"0123456789abcdef-shared", ts, &req.body, sig));
    assert!(!verify(b"another-key-of-16+", ts, &req.body, sig));
    assert!(!verify(
        b"0123456789abcdef-shared",
        ts,
        &req.body.replace("Anna", "Eve"),
        sig
    ));
    assert_eq!(req.header("Idempotency-Key"), Some("k-9"));
    assert_eq!(body(req)["report"]["ticket"], 4711);
}

#[test]
fn the_outbox_retries_a_failing_webhook_and_delivers_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // Down for the first two tries (a 503, then a 500), then up.
    let server = TestServer::start(move |_| match c.fetch_add(1, Ordering::SeqCst) {
        0 => (503, "{}".into()),
        1 => (500, "{}".into()),
        _ => (200, "{}".into()),
    });
    let dir = std::env::temp_dir().join(format!("fh-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let connector: std::sync::Arc<dyn Connector> = std::sync::Arc::new(
        super::webhook::Webhook::new(
            super::http::Http::new(None).unwrap(),
            &server.url,
            b"0123456789abcdef-shared".to_vec(),
        )
        .unwrap(),
    );
    let at = audit::db::Location::Sqlite(dir.clone());
    let (queued, reports) = std::sync::mpsc::channel();
    let log = audit::AuditLog::open(&dir, &at, 365, Some(queued)).unwrap();
    crate::outbox::spawn(
        at,
        connector,
        reports,
        1,
        Some("relay.schultraeger.example:443".into()),
    )
    .unwrap();
    let t = protocol::ids::TicketNumber::from_u64(4711).ok();
    log.record(
        t,
        AuditRecord::SessionStarted {
            host: "PC-12".into(),
            staff: "Anna Schmidt".into(),
        },
    );
    log.record(
        t,
        AuditRecord::SessionEnded {
            host: "PC-12".into(),
            staff: "Anna Schmidt".into(),
            reason: EndKind::EndedByViewer,
            duration_s: 61,
            agent_bytes_sent: None,
            agent_bytes_received: None,
        },
    );
    log.flush();
    let mut store = audit::store::AuditStore::open(&dir).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let reports = loop {
        let r = store.reports_for_ticket(4711).unwrap();
        if r.len() == 2 && r.iter().all(|e| e.state == "delivered") {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {r:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Each report reached the receiver exactly once with success; the failed tries carried
    // the same key as the one that worked.
    let seen = server.seen();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    let keys: Vec<_> = seen
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_owned())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[1], keys[2]);
    assert_ne!(keys[2], keys[3]);
    assert_eq!(reports[0].attempts, 3);
    assert_eq!(reports[1].attempts, 1);
    // The start report carries the link to this relay and ticket; the end report does not
    // need it (the session is over) but may carry it.
    let start = body(&seen[2]);
    assert_eq!(
        start["report"]["link"],
        "fernhilfe://relay.schultraeger.example:443/ticket/4711"
    );

    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(server.seen().len(), 4, "nothing posted twice");
    assert!(store
        .verify(audit::clock::unix_now(), 365)
        .unwrap()
        .broken
        .is_none());
}

/// A ticket system behind a carrier's own CA: reachable with its certificate in `ca_file`,
/// refused without it.
#[test]
fn a_ca_file_lets_the_relay_reach_a_ticket_system_behind_a_private_ca() {
    use base64::Engine;
    use std::io::{Read, Write};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = transport::identity::Identity::generate("localhost").unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(id.chain[0].as_ref())
    );
    let dir = std::env::temp_dir().join(format!("fh-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let tls = std::sync::Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(id.chain.clone(), id.key.clone_key())
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).is_ok() {
                let body = r#"{"Status":"open"}"#;
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = s.flush();
            }
        }
    });
    let url = format!("https://localhost:{port}");
    let rt = |http| {
        super::rt::RequestTracker::new(http, &url, super::rt::Auth::Token("t".into()), Lang::De)
            .unwrap()
    };
    let trusted = rt(super::http::Http::new(Some(&ca)).unwrap());
    assert_eq!(trusted.ticket_state(4711).unwrap(), TicketState::Open);
    let public_roots = rt(super::http::Http::new(None).unwrap());
    assert!(
        public_roots.ticket_state(4711).is_err(),
        "a private CA was trusted without ca_file"
    );
    assert!(super::http::Http::new(Some(&dir.join("missing.pem"))).is_err());
    std::fs::write(dir.join("empty.pem"), "not a certificate").unwrap();
    assert!(super::http::Http::new(Some(&dir.join("empty.pem"))).is_err());
}
