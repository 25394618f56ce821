//! The daemon's HTTP listener (`--listen`): `/metrics` for Prometheus, `/healthz` and
//! `/readyz` for probes. Plain `hyper` (already under `reqwest`), HTTP/1.1, GET and HEAD
//! only; nothing it serves carries a token, a token path or a URL with a token.

use super::board::Observed;
use crate::metrics::Metrics;
use crate::picture::Digest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A slow client gets this long to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the listener serves from.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The loop's liveness, readiness and report.
    pub observed: Arc<Observed>,
}

/// Serves `listener` until the process ends.
pub(crate) async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tracing::warn!("the HTTP listener cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&request, &shared).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
}

/// The answer to one request.
async fn respond(request: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_owned(),
        );
    }
    let path = request.uri().path();
    let response = match path {
        "/" => {
            let mut response = text(StatusCode::OK, shared.observed.board.page());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        _ if path.starts_with("/pictures/") => picture(path, shared).await,
        "/metrics" => {
            // Prometheus asks for OpenMetrics; anything else (curl, promtool, older
            // scrapers) gets the classic text format.
            let openmetrics = (request.headers().get(hyper::header::ACCEPT))
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("application/openmetrics-text"));
            let (body, content_type) = if openmetrics {
                (
                    shared.metrics.encode(),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
            } else {
                (
                    shared.metrics.encode_classic(),
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            };
            let mut response = text(StatusCode::OK, body);
            (response.headers_mut()).insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        "/healthz" => match shared.observed.health.alive() {
            Ok(()) => text(StatusCode::OK, "ok: the loop turns\n".to_owned()),
            Err(since) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("stuck: the loop last turned {}s ago\n", since.as_secs()),
            ),
        },
        "/readyz" => match shared.observed.health.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /metrics, /healthz or /readyz\n".to_owned(),
        ),
    };
    tracing::debug!(
        path = request.uri().path(),
        status = response.status().as_u16(),
        "HTTP"
    );
    response
}

/// `/pictures/<sha256>.jpg`: the thumbnail of an upload the page shows; immutable (its
/// name is its content's hash).
async fn picture(path: &str, shared: &Shared) -> Response<Full<Bytes>> {
    let digest = path
        .strip_prefix("/pictures/")
        .and_then(|name| name.strip_suffix(".jpg"))
        .and_then(|hex| hex.parse::<Digest>().ok());
    let observed = Arc::clone(&shared.observed);
    let thumbnail = match digest {
        Some(digest) => tokio::task::spawn_blocking(move || observed.board.thumbnail(digest))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match thumbnail {
        Some(bytes) => {
            let mut response = Response::new(Full::new(bytes));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            response
        }
        None => text(StatusCode::NOT_FOUND, "no such picture\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
