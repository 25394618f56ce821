//! The GREEN-API client: every row of the contract's table, the exact request on the wire,
//! and token redaction with real client errors.

use super::classify::classify;
use super::scrub::Scrubber;
use super::*;
use crate::outcome::{CallFailure, CallOutcome, FailureKind};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};

const TOKEN: &str = "SeCrEtToKeN1234567890abcdef";
const ID: &str = "1101000001";

fn failed(outcome: &CallOutcome) -> &CallFailure {
    match outcome {
        CallOutcome::Failed(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Classifies and checks that the result failed with `kind` and a one-line detail.
fn kind_of(status: u16, body: &str) -> (FailureKind, String) {
    let outcome = classify(status, body.as_bytes());
    let failure = failed(&outcome).clone();
    assert_one_line(&failure.detail);
    (failure.kind, failure.detail)
}

fn assert_one_line(detail: &str) {
    assert!(!detail.is_empty());
    let start: String = detail.chars().take(300).collect();
    assert!(!detail.chars().any(char::is_control), "{start:?}");
    // About 200 characters: a fixed sentence and an excerpt of at most 160.
    let count = detail.chars().count();
    assert!(count <= 240, "{count} chars: {start}…");
}

// ---------------------------------------------------------------------------------------
// classify(): the contract's table, row by row.

#[test]
fn a_200_true_is_applied_with_its_url() {
    let outcome = classify(
        200,
        br#"{"urlAvatar":"https://pps.whatsapp.net/v/t61/a.jpg","setProfilePicture":true,"reason":null}"#,
    );
    assert_eq!(
        outcome,
        CallOutcome::Applied {
            url_avatar: Some("https://pps.whatsapp.net/v/t61/a.jpg".to_owned())
        }
    );
}

#[test]
fn a_200_true_without_a_url_is_applied_without_one() {
    for body in [
        r#"{"setProfilePicture":true}"#,
        r#"{"setProfilePicture":true,"urlAvatar":"","reason":null}"#,
        r#"{"setProfilePicture":true,"urlAvatar":null}"#,
    ] {
        assert_eq!(
            classify(200, body.as_bytes()),
            CallOutcome::Applied { url_avatar: None },
            "{body}"
        );
    }
}

#[test]
fn a_200_rate_overlimit_is_rate_overlimit() {
    let (kind, detail) = kind_of(
        200,
        r#"{"reason": "rate-overlimit", "setProfilePicture": false}"#,
    );
    assert_eq!(kind, FailureKind::RateOverlimit);
    assert!(detail.contains("rate-overlimit"), "{detail}");
}

#[test]
fn a_200_false_with_another_reason_is_not_applied() {
    let (kind, detail) = kind_of(
        200,
        r#"{"urlAvatar":"","setProfilePicture":false,"reason":"bad picture size"}"#,
    );
    assert_eq!(kind, FailureKind::NotApplied);
    assert!(detail.contains("bad picture size"), "{detail}");
    let (kind, detail) = kind_of(200, r#"{"setProfilePicture":false}"#);
    assert_eq!(kind, FailureKind::NotApplied);
    assert!(detail.contains("none"), "{detail}");
}

#[test]
fn a_200_with_code_401_is_unauthorized() {
    let (kind, _) = kind_of(200, r#"{"code":401,"description":"Unauthorized"}"#);
    assert_eq!(kind, FailureKind::Unauthorized);
    let (kind, _) = kind_of(200, r#"{"code":403,"description":"Forbidden"}"#);
    assert_eq!(kind, FailureKind::Forbidden);
}

#[test]
fn a_400_about_the_bytes_is_refused_bytes() {
    for body in [
        "File is empty",
        "Unsupported media type",
        r#"{"message":"Unsupported media type"}"#,
        r#"{"statusCode":400,"timestamp":"2026-01-02T03:04:05Z","path":"/x","message":"File is empty"}"#,
        "unsupported MEDIA type",
    ] {
        let (kind, detail) = kind_of(400, body);
        assert_eq!(kind, FailureKind::RefusedBytes, "{body}");
        assert!(detail.starts_with("GREEN-API answered 400: "), "{detail}");
    }
}

#[test]
fn a_400_while_starting_is_instance_starting() {
    let (kind, _) = kind_of(400, "instance in starting process try later");
    assert_eq!(kind, FailureKind::InstanceStarting);
    let (kind, _) = kind_of(
        400,
        r#"{"message":"Instance in starting process try later"}"#,
    );
    assert_eq!(kind, FailureKind::InstanceStarting);
}

#[test]
fn a_400_for_an_unusable_instance_is_instance_not_usable() {
    for body in [
        "not authorized",
        "Instance not authorized",
        r#"{"message":"instance expired"}"#,
        "Instance deleted",
    ] {
        let (kind, detail) = kind_of(400, body);
        assert_eq!(kind, FailureKind::InstanceNotUsable, "{body}");
        assert!(detail.contains(body), "{detail}");
    }
}

#[test]
fn another_400_is_an_unexpected_answer() {
    let (kind, detail) = kind_of(400, "Validation failed");
    assert_eq!(kind, FailureKind::UnexpectedAnswer);
    assert_eq!(detail, "GREEN-API answered 400: Validation failed");
}

#[test]
fn statuses_map_to_their_kinds() {
    for (status, body, want) in [
        (401, "Unauthorized", FailureKind::Unauthorized),
        (401, "", FailureKind::Unauthorized),
        (403, "Forbidden", FailureKind::Forbidden),
        (404, "", FailureKind::Forbidden),
        (429, "Too Many Requests", FailureKind::TooManyRequests),
        (466, "", FailureKind::QuotaExceeded),
        (499, "", FailureKind::ServerError),
        (500, "Internal Server Error", FailureKind::ServerError),
        (502, "<html>Bad Gateway</html>", FailureKind::ServerError),
        (503, "", FailureKind::ServerError),
        (504, "", FailureKind::ServerError),
    ] {
        let (kind, detail) = kind_of(status, body);
        assert_eq!(kind, want, "{status} {body}");
        assert!(detail.contains(&status.to_string()), "{detail}");
    }
}

#[test]
fn a_server_error_carries_an_excerpt_of_the_body() {
    let (_, detail) = kind_of(503, "Service\n  Unavailable\r\n");
    assert_eq!(detail, "GREEN-API answered 503: Service Unavailable");
    let (_, detail) = kind_of(500, "");
    assert_eq!(detail, "GREEN-API answered 500");
}

#[test]
fn a_200_that_is_not_json_is_an_unexpected_answer() {
    for body in [
        "<html>maintenance</html>",
        "",
        "null",
        "[1,2]",
        r#"{"reason":null}"#,
    ] {
        let (kind, _) = kind_of(200, body);
        assert_eq!(kind, FailureKind::UnexpectedAnswer, "{body:?}");
    }
}

#[test]
fn details_stay_one_short_line_for_a_huge_body() {
    let huge = format!(
        "{}\n{}\r\n\t{}",
        "x".repeat(50_000),
        "y ".repeat(20_000),
        "é".repeat(10_000)
    );
    for status in [200, 400, 403, 500] {
        let (_, detail) = kind_of(status, &huge);
        assert!(detail.ends_with('…'), "{status}: {detail}");
    }
    let reason = format!(
        r#"{{"setProfilePicture":false,"reason":"{}\n{}"}}"#,
        "r".repeat(5_000),
        "s".repeat(5_000)
    );
    let (kind, detail) = kind_of(200, &reason);
    assert_eq!(kind, FailureKind::NotApplied);
    assert!(detail.contains("rrr"), "{detail}");
}

#[test]
fn details_stay_one_short_line_for_a_body_that_is_not_utf8() {
    let outcome = classify(500, b"\xff\xfe\x00\x01bad\x1b[31mred");
    let failure = failed(&outcome);
    assert_eq!(failure.kind, FailureKind::ServerError);
    assert_one_line(&failure.detail);
}

#[test]
fn a_long_description_in_a_200_stays_one_short_line() {
    let body = format!(
        r#"{{"code":401,"description":"{}\n{}"}}"#,
        "d".repeat(5_000),
        "e".repeat(5_000)
    );
    let (kind, _) = kind_of(200, &body);
    assert_eq!(kind, FailureKind::Unauthorized);
    let body = format!(
        r#"{{"code":500,"description":"line one\nline two {}"}}"#,
        "f".repeat(5_000)
    );
    let (kind, _) = kind_of(200, &body);
    assert_eq!(kind, FailureKind::UnexpectedAnswer);
}

// ---------------------------------------------------------------------------------------
// Labels.

#[test]
fn failure_kinds_round_trip_through_serde_as_their_labels() {
    for kind in FailureKind::ALL {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.label()));
        assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), kind);
        assert_eq!(kind.to_string(), kind.label());
    }
    let labels: Vec<&str> = FailureKind::ALL.iter().map(|k| k.label()).collect();
    assert_eq!(
        labels,
        [
            "rate-overlimit",
            "not-applied",
            "unauthorized",
            "forbidden",
            "refused-bytes",
            "instance-starting",
            "instance-not-usable",
            "too-many-requests",
            "quota-exceeded",
            "server-error",
            "timeout",
            "connection",
            "unexpected-answer",
        ]
    );
    assert!(serde_json::from_str::<FailureKind>("\"RateOverlimit\"").is_err());
}

// ---------------------------------------------------------------------------------------
// Scrubbing (more cases in scrub.rs).

#[test]
fn every_occurrence_of_the_token_is_redacted() {
    assert_eq!(
        Scrubber::new(TOKEN).clean(&format!("POST /setProfilePicture/{TOKEN}: {TOKEN}!")),
        "POST /setProfilePicture/[redacted]: [redacted]!"
    );
}

#[test]
fn a_token_cut_by_the_excerpt_is_not_shown() {
    // A server that echoes the request path, with the token straddling the 160-char cut.
    let body = format!("{} {TOKEN} trailing", "x".repeat(149));
    let outcome = classify(500, body.as_bytes()).scrubbed(&Scrubber::new(TOKEN));
    let detail = &failed(&outcome).detail;
    assert!(!detail.contains(&TOKEN[..10]), "{detail}");
}

// ---------------------------------------------------------------------------------------
// The real client, against sockets on 127.0.0.1.

fn upload(api_url: &ApiUrl, id: &InstanceId, token: &ApiToken, bytes: &[u8]) -> Upload {
    Upload {
        api_url: api_url.clone(),
        id: id.clone(),
        token: token.clone(),
        filename: "support.jpg".to_owned(),
        bytes: bytes.to_vec(),
    }
}

async fn call(api_url: &str, bytes: &[u8]) -> CallOutcome {
    let api_url = ApiUrl::parse(api_url).unwrap();
    let id = InstanceId::parse(ID).unwrap();
    let token = ApiToken::parse(TOKEN).unwrap();
    HttpGateway::new()
        .unwrap()
        .set_profile_picture(upload(&api_url, &id, &token, bytes))
        .await
}

fn assert_connection_failure_without_token(outcome: &CallOutcome) {
    let failure = failed(outcome);
    assert_eq!(failure.kind, FailureKind::Connection, "{failure:?}");
    assert_one_line(&failure.detail);
    let debug = format!("{outcome:?}");
    for text in [debug.as_str(), failure.detail.as_str()] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("setProfilePicture/"), "{text}");
        assert!(!text.contains("SeCrEt"), "{text}");
    }
}

#[tokio::test]
async fn a_refused_connection_fails_without_showing_the_token() {
    // Port 1 (tcpmux) is not served on test machines: connection refused.
    let outcome = call("http://127.0.0.1:1", b"\xff\xd8\xff\xff\xd9").await;
    assert_connection_failure_without_token(&outcome);
}

#[tokio::test]
async fn a_dropped_connection_fails_without_showing_the_token() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Accept and hang up at once, however many times the client tries.
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let outcome = call(&format!("http://127.0.0.1:{port}"), b"\xff\xd8\xff\xff\xd9").await;
    assert_connection_failure_without_token(&outcome);
}

/// Reads one HTTP/1.1 request (headers, then a Content-Length or chunked body) and
/// answers it with `status` and `body`. Returns the raw request bytes.
fn serve_once(
    listener: TcpListener,
    status: &'static str,
    body: String,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let request = read_request(&mut stream);
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        stream.flush().unwrap();
        request
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = find(&request, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let body = &request[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let done = match length {
                Some(length) => body.len() >= length,
                None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                None => true,
            };
            if done {
                return request;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the client hung up mid-request");
        request.extend_from_slice(&buf[..n]);
    }
}

fn headers_of(request: &[u8]) -> Vec<String> {
    let end = find(request, b"\r\n\r\n").unwrap();
    String::from_utf8(request[..end].to_vec())
        .unwrap()
        .split("\r\n")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_success_sends_the_official_request_shape() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(
        listener,
        "200 OK",
        r#"{"urlAvatar":"https://x/y.jpg","setProfilePicture":true,"reason":null}"#.to_owned(),
    );
    // A JPEG-looking payload with every byte value, CR/LF and NUL included.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend((0..=255u8).cycle().take(3000));
    jpeg.extend([0xFF, 0xD9]);

    let outcome = call(&format!("http://127.0.0.1:{port}"), &jpeg).await;
    assert_eq!(
        outcome,
        CallOutcome::Applied {
            url_avatar: Some("https://x/y.jpg".to_owned())
        }
    );

    let request = server.join().unwrap();
    let headers = headers_of(&request);
    assert_eq!(
        headers[0],
        format!("POST /waInstance{ID}/setProfilePicture/{TOKEN} HTTP/1.1")
    );
    let lower: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    assert!(
        lower.iter().any(|h| h == "user-agent: avatar-sync/0.1.0"),
        "{headers:#?}"
    );
    assert_eq!(crate::USER_AGENT, "avatar-sync/0.1.0");
    let content_type = lower
        .iter()
        .find(|h| h.starts_with("content-type:"))
        .unwrap_or_else(|| panic!("no content-type in {headers:#?}"));
    assert!(
        content_type.starts_with("content-type: multipart/form-data; boundary="),
        "{content_type}"
    );

    let body = &request[find(&request, b"\r\n\r\n").unwrap() + 4..];
    let part_head =
        b"Content-Disposition: form-data; name=\"file\"; filename=\"support.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n";
    let at = find(body, part_head)
        .unwrap_or_else(|| panic!("no file part in {}", String::from_utf8_lossy(body)));
    let data = &body[at + part_head.len()..];
    assert!(data.starts_with(&jpeg), "the file bytes differ");
    // The bytes are followed by the closing boundary and nothing else of ours.
    assert!(data[jpeg.len()..].starts_with(b"\r\n--"));
    // Exactly one part.
    assert_eq!(
        body.windows(b"Content-Disposition".len())
            .filter(|w| w == b"Content-Disposition")
            .count(),
        1
    );
}

#[tokio::test]
async fn an_answer_that_echoes_the_token_is_scrubbed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(
        listener,
        "500 Internal Server Error",
        format!("no route for /waInstance{ID}/setProfilePicture/{TOKEN}"),
    );
    let outcome = call(&format!("http://127.0.0.1:{port}"), b"\xff\xd8\xff\xff\xd9").await;
    server.join().unwrap();
    let failure = failed(&outcome);
    assert_eq!(failure.kind, FailureKind::ServerError);
    assert_eq!(
        failure.detail,
        format!(
            "GREEN-API answered 500: no route for /waInstance{ID}/setProfilePicture/[redacted]"
        )
    );
    assert!(!format!("{outcome:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_real_400_refusal_is_refused_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(
        listener,
        "400 Bad Request",
        r#"{"message":"Unsupported media type"}"#.to_owned(),
    );
    let outcome = call(&format!("http://127.0.0.1:{port}"), b"GIF89a").await;
    server.join().unwrap();
    assert_eq!(failed(&outcome).kind, FailureKind::RefusedBytes);
}

#[tokio::test]
async fn an_answer_longer_than_the_cap_is_unexpected_and_not_read_whole() {
    // A valid success, padded to 1 MiB with whitespace JSON allows: read whole, it parses.
    let mut body =
        br#"{"urlAvatar":"https://x/y.jpg","setProfilePicture":true,"reason":null}"#.to_vec();
    body.resize(1024 * 1024, b' ');
    for declared_length in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = body.clone();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            let head = if declared_length {
                format!("content-length: {}\r\n", body.len())
            } else {
                String::new()
            };
            let head = format!("HTTP/1.1 200 OK\r\n{head}connection: close\r\n\r\n");
            // The client may hang up once it has read enough: errors are expected.
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        });
        let outcome = call(&format!("http://127.0.0.1:{port}"), b"\xff\xd8\xff\xff\xd9").await;
        server.join().unwrap();
        let failure = failed(&outcome);
        assert_eq!(failure.kind, FailureKind::UnexpectedAnswer, "{failure:?}");
        assert!(failure.detail.contains("65536 bytes"), "{failure:?}");
    }
}

#[test]
fn only_an_https_proxy_from_https_proxy_or_all_proxy_is_used() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let proxy = |pairs| super::proxy_from_env(env(pairs)).map(|u| u.to_string());
    assert_eq!(proxy(&[]), None);
    assert_eq!(proxy(&[("HTTP_PROXY", "https://p:3128")]), None);
    assert_eq!(proxy(&[("HTTPS_PROXY", "http://p:3128")]), None);
    assert_eq!(proxy(&[("ALL_PROXY", "socks5://p:1080")]), None);
    assert_eq!(
        proxy(&[("https_proxy", "https://p:3128")]).as_deref(),
        Some("https://p:3128/")
    );
    assert_eq!(
        proxy(&[
            ("ALL_PROXY", "https://a:3128"),
            ("HTTPS_PROXY", "https://h:3128")
        ])
        .as_deref(),
        Some("https://h:3128/")
    );
}
