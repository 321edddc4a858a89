//! The relay's HTTP listener for ops, apart from its public ports (default: loopback only):
//! `GET /healthz` (the process answers), `GET /readyz` (it takes sessions: its ports are open
//! and the audit store writes) and `GET /metrics` ([`crate::metrics`], OpenMetrics text). Nothing
//! else: no request body is read, a client gets a few seconds for its request, and only a
//! handful of connections are served at once, so an exposed listener costs little to abuse.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connections served at the same time; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// Time for a client to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection is kept, however busy.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);
/// The content type Prometheus asks for and the encoder writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener asks the relay.
pub(crate) struct OpsHooks {
    /// Why the relay does not take sessions, if it does not.
    pub not_ready: Box<dyn Fn() -> Option<&'static str> + Send + Sync>,
    /// Updates the gauges that are read when scraped.
    pub refresh: Box<dyn Fn() + Send + Sync>,
}

/// Serves ops requests from `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, hooks: Arc<OpsHooks>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ops listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let hooks = hooks.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let hooks = hooks.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &hooks)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIMIT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "ops listener: connection failed")
                }
                Err(_) => {
                    tracing::debug!(%remote, "ops listener: connection kept too long; closed")
                }
            }
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn answer<B>(req: &Request<B>, hooks: &OpsHooks) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "only GET\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => match (hooks.not_ready)() {
            None => text(StatusCode::OK, PLAIN, "ready\n".into()),
            Some(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            (hooks.refresh)();
            text(StatusCode::OK, OPENMETRICS, crate::metrics::encode())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: /healthz, /readyz, /metrics\n".into(),
        ),
    }
}
