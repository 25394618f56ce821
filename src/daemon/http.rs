//! The daemon's HTTP listener (`--listen`): `/metrics` for Prometheus, `/healthz` and
//! `/readyz` for probes, the status page. Plain `hyper` (already under `reqwest`),
//! HTTP/1.1, GET and HEAD only; nothing it serves carries a token, a token path or a URL
//! with a token. Connections are capped (`connections.rs`), and a request must name this
//! listener as its host ([`Hosts`]).

use super::board::Observed;
use super::connections::Connections;
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
    /// The names requests may give as their host.
    pub hosts: Arc<Hosts>,
}

/// Serves `listener` until the process ends, holding at most the connections
/// `connections` allows.
pub(crate) async fn serve(listener: TcpListener, shared: Shared, connections: Arc<Connections>) {
    let mut refused = 0_u64;
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
        let Some(slot) = connections.admit() else {
            // Every held connection is answering a request: this one waits for nothing.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    "the HTTP listener is at its cap of connections, all busy; refusing"
                );
            }
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let answering = Arc::clone(&slot);
            let service = hyper::service::service_fn(move |request| {
                let busy = answering.busy();
                let shared = shared.clone();
                async move {
                    let response = respond(&request, &shared).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!("HTTP connection ended: {e}");
                },
                () = slot.closed() => tracing::debug!("HTTP connection closed: idle at the cap"),
            }
        });
    }
}

/// The host names a request may give (`Host:`): any IP address (DNS rebinding needs a
/// name), `localhost`, and the names given with `--listen-host`.
#[derive(Debug)]
pub(crate) struct Hosts(Vec<String>);

impl Hosts {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let mut names: Vec<String> = (names.into_iter())
            .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        names.push("localhost".to_owned());
        Self(names)
    }

    /// Whether `host` (a `Host:` header's value, with or without its port) names this
    /// listener.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<hyper::http::uri::Authority>() else {
            return false;
        };
        let name = authority.host();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.0.contains(&name)
    }
}

/// The answer to one request.
async fn respond(request: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    // No Host: (HTTP/1.0) is no browser's request; one naming another host may be a page
    // reading the listener through DNS rebinding.
    let host = request.headers().get(hyper::header::HOST);
    if let Some(host) = host.map(|h| h.to_str().unwrap_or_default())
        && !shared.hosts.allows(host)
    {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this listener does not answer to the host {host:?}; start avatar-sync with \
                 --listen-host NAME to add a name\n"
            ),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::Hosts;

    #[test]
    fn n3_only_addresses_localhost_and_the_configured_names_are_this_listeners_hosts() {
        let hosts = Hosts::new(vec!["Avatar-Sync.example.com.".to_owned(), " ".to_owned()]);
        for host in [
            "127.0.0.1:9184",
            "127.0.0.1",
            "[::1]:9184",
            "10.1.2.3:9184",
            "localhost:9184",
            "LOCALHOST",
            "avatar-sync.example.com",
            "avatar-sync.example.com.:443",
        ] {
            assert!(hosts.allows(host), "{host} refused");
        }
        for host in [
            "attacker.example:9184", // a rebinding page names its own domain
            "localhost.attacker.example",
            "example.com",
            "",
            "avatar-sync.example.com@evil",
            "127.0.0.1.nip.io:9184",
        ] {
            assert!(!hosts.allows(host), "{host} allowed");
        }
    }
}
