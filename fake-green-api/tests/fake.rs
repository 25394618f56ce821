//! Self-test of the GREEN-API fake, through a small hand-written HTTP/1.1 client on
//! `std::net::TcpStream` that sends real multipart bodies.

use fake_green_api::{Answer, FakeGreenApi};
use serde_json::{Value, json};
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TOKEN: &str = "a1b2c3d4e5f6SeCrEt7890token";
const JPG: &[u8] = include_bytes!("../../examples/pictures/support.jpg");
const BOUNDARY: &str = "----avatar-sync-test-boundary-7MA4YWxkTrZu0gW";
/// Generous bound for things that must happen "soon" on a loaded machine.
const SOON: Duration = Duration::from_secs(20);

/// A JPEG-looking file whose bytes differ for each `n`.
fn jpeg(n: u32) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xFE];
    out.extend_from_slice(format!("variant {n}").as_bytes());
    out.extend_from_slice(&JPG[2..]);
    out
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A multipart body with one part.
fn multipart(field: &str, filename: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The URL the fake gives for instance `id`'s picture number `path` (the first upload is 2),
/// at `side` (96 or 640), with signature generation `signature`.
fn avatar_url(fake: &FakeGreenApi, id: &str, path: u64, side: u32, signature: u64) -> String {
    format!(
        "{}/v/t61.24694-24/{id}_{path}_n.jpg?stp=dst-jpg_s{side}x{side}&ccb=11-4&oh=01_Q5Aa{:08x}&oe={:08X}",
        fake.url(),
        signature.wrapping_mul(0x9e37_79b9),
        0x6000_0000 + signature
    )
}

fn path(id: &str, token: &str) -> String {
    format!("/waInstance{id}/setProfilePicture/{token}")
}

/// A complete POST with a `Content-Length` body.
fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fake-test/1.0\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// An answer as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal keep-alive HTTP/1.1 client.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(fake: &FakeGreenApi) -> Client {
        let stream = TcpStream::connect(fake.addr()).unwrap();
        stream.set_read_timeout(Some(SOON)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Reads one response; any failure (EOF, reset, timeout) is an error.
    fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            self.fill()?;
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        while self.buf.len() < length {
            self.fill()?;
        }
        let body = self.buf.drain(..length).collect();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends a POST of `file` to instance `id` and reads the answer.
    fn upload(&mut self, id: &str, token: &str, file: &[u8]) -> Response {
        self.send(&post(
            &path(id, token),
            &multipart("file", "avatar.jpg", "image/jpeg", file),
        ));
        self.read_response().unwrap()
    }
}

/// One call on a fresh connection.
fn upload(fake: &FakeGreenApi, id: &str, token: &str, file: &[u8]) -> Response {
    Client::connect(fake).upload(id, token, file)
}

/// A fake with instance 1101000001 registered.
fn fake() -> FakeGreenApi {
    let fake = FakeGreenApi::start();
    fake.add_instance("1101000001", TOKEN);
    fake
}

#[test]
fn a_normal_upload_is_applied_and_recorded() {
    let fake = fake();
    assert!(fake.url().starts_with("http://127.0.0.1:"));
    let before = Instant::now();
    let mut client = Client::connect(&fake);
    client.send(&post(
        &path("1101000001", TOKEN),
        &multipart("file", "support.jpg", "image/jpeg", JPG),
    ));
    let response = client.read_response().unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("connection"), Some("keep-alive"));
    assert_eq!(
        response.json(),
        json!({
            "urlAvatar": avatar_url(&fake, "1101000001", 2, 640, 0),
            "setProfilePicture": true,
            "reason": null,
        })
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.instance, "1101000001");
    assert!(request.token_valid);
    assert_eq!(request.method, "POST");
    assert_eq!(request.user_agent.as_deref(), Some("fake-test/1.0"));
    assert_eq!(
        request.content_type.as_deref(),
        Some(format!("multipart/form-data; boundary={BOUNDARY}").as_str())
    );
    assert_eq!(request.field_name.as_deref(), Some("file"));
    assert_eq!(request.filename.as_deref(), Some("support.jpg"));
    assert_eq!(request.part_content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(request.file, JPG);
    let sha = sha256(JPG);
    assert_eq!(request.file_sha256, sha);
    assert_eq!(request.answer, "applied");
    assert!(request.received_at >= before);
    let answered = request
        .answered_at
        .expect("answered_at is set before the answer is sent");
    assert!(answered >= request.received_at);
    assert!(answered <= Instant::now());
    assert_eq!(fake.current_picture("1101000001"), Some(sha));
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.requests_for("1101000001").len(), 1);
    assert!(fake.requests_for("1101000002").is_empty());
    assert_eq!(fake.current_picture("1101000002"), None);

    // The token is never kept; the Debug output shows the file's size, not its bytes.
    let debug = format!("{requests:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains(&format!("<{} bytes>", JPG.len())), "{debug}");
}

#[test]
fn a_wrong_token_is_401_and_an_unknown_instance_403() {
    let fake = fake();
    fake.script("1101000002", [Answer::Status(500, "boom".into())]);
    let wrong = "WrOnGtOkEn0123456789abcdefXYZ";
    let response = upload(&fake, "1101000001", wrong, JPG);
    assert_eq!(response.status, 401, "{response:?}");
    // Scripted but never registered: still unknown.
    let response = upload(&fake, "1101000002", TOKEN, JPG);
    assert_eq!(response.status, 403, "{response:?}");

    let requests = fake.requests();
    let answers: Vec<&str> = requests.iter().map(|r| r.answer.as_str()).collect();
    assert_eq!(answers, ["401", "403"]);
    assert!(requests.iter().all(|r| !r.token_valid));
    assert!(
        requests.iter().all(|r| r.file == JPG),
        "the call is recorded in full"
    );
    assert!(requests[0].answered_at.is_some());
    assert_eq!(fake.current_picture("1101000001"), None);
    assert!(!format!("{requests:?}").contains(wrong));

    // A wrong token does not count towards WhatsApp's limit: the next good call is applied.
    assert_eq!(
        upload(&fake, "1101000001", TOKEN, JPG).json()["setProfilePicture"],
        true
    );
}

#[test]
fn other_paths_and_methods_are_404() {
    let fake = fake();
    let mut client = Client::connect(&fake);
    for target in [
        "/".to_owned(),
        "/waInstance1101000001/getSettings/x".to_owned(),
        format!("/waInstance1101000001/setProfilePicture/{TOKEN}/extra"),
        "/waInstance1101000001/setProfilePicture/".to_owned(),
    ] {
        client.send(&post(
            &target,
            &multipart("file", "a.jpg", "image/jpeg", JPG),
        ));
        let response = client.read_response().unwrap();
        assert_eq!(response.status, 404, "{target}: {response:?}");
    }
    assert_eq!(fake.request_count(), 0, "other paths are not recorded");

    // The endpoint's path with another method: 404, recorded as such.
    client.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            path("1101000001", TOKEN)
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().unwrap().status, 404);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].answer, "404");
    assert!(requests[0].file.is_empty());
    assert_eq!(requests[0].file_sha256, sha256(b""));
}

#[test]
fn missing_empty_and_non_jpeg_files_are_400() {
    let fake = fake();
    let mut client = Client::connect(&fake);
    let empty = json!({"message": "File is empty"});
    // No `file` part: the other part is still recorded.
    let response = client.upload_body(&multipart("picture", "a.jpg", "image/jpeg", JPG));
    assert_eq!((response.status, response.json()), (400, empty.clone()));
    let response = client.upload("1101000001", TOKEN, b"");
    assert_eq!((response.status, response.json()), (400, empty.clone()));
    // Not multipart at all.
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
            path("1101000001", TOKEN)
        )
        .as_bytes(),
    );
    let response = client.read_response().unwrap();
    assert_eq!((response.status, response.json()), (400, empty));
    let response = client.upload("1101000001", TOKEN, b"\x89PNG\r\n\x1a\n not a jpeg");
    assert_eq!(
        (response.status, response.json()),
        (400, json!({"message": "Unsupported media type"}))
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.answer == "400" && r.token_valid));
    assert_eq!(requests[0].field_name.as_deref(), Some("picture"));
    assert_eq!(requests[0].file, JPG);
    assert_eq!(requests[1].field_name.as_deref(), Some("file"));
    assert!(requests[1].file.is_empty());
    assert_eq!(requests[2].field_name, None);
    assert_eq!(
        requests[2].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(fake.current_picture("1101000001"), None);
}

impl Client {
    /// Sends `body` as the multipart body of a call to instance 1101000001.
    fn upload_body(&mut self, body: &[u8]) -> Response {
        self.send(&post(&path("1101000001", TOKEN), body));
        self.read_response().unwrap()
    }
}

#[test]
fn a_quick_second_call_is_rate_overlimit_until_the_window_passes() {
    let fake = fake();
    // A window no loaded machine can overrun between two calls.
    fake.set_rate_window(Duration::from_secs(600));
    let overlimit =
        json!({"urlAvatar": "", "setProfilePicture": false, "reason": "rate-overlimit"});
    assert_eq!(
        upload(&fake, "1101000001", TOKEN, &jpeg(1)).json()["setProfilePicture"],
        true
    );
    let response = upload(&fake, "1101000001", TOKEN, &jpeg(2));
    assert_eq!((response.status, response.json()), (200, overlimit));
    assert_eq!(fake.current_picture("1101000001"), Some(sha256(&jpeg(1))));

    // With a short window, a call made after sleeping longer than it is applied (the gap
    // between arrivals is at least the sleep, however slow the machine).
    let window = Duration::from_millis(300);
    fake.set_rate_window(window);
    std::thread::sleep(window + Duration::from_millis(50));
    assert_eq!(
        upload(&fake, "1101000001", TOKEN, &jpeg(3)).json()["setProfilePicture"],
        true
    );
    assert_eq!(fake.current_picture("1101000001"), Some(sha256(&jpeg(3))));

    let answers: Vec<String> = fake.requests().into_iter().map(|r| r.answer).collect();
    assert_eq!(answers, ["applied", "rate-overlimit", "applied"]);

    // Instances are limited separately.
    fake.add_instance("1101000002", TOKEN);
    fake.set_rate_window(Duration::from_secs(600));
    assert_eq!(
        upload(&fake, "1101000002", TOKEN, &jpeg(4)).json()["setProfilePicture"],
        true
    );
}

#[test]
fn scripted_answers_are_consumed_in_order_on_one_keep_alive_connection() {
    let fake = fake();
    fake.set_rate_window(Duration::ZERO);
    fake.script(
        "1101000001",
        [
            Answer::RateOverlimit,
            Answer::NotApplied("too small".into()),
            Answer::Unauthorized200,
            Answer::Status(500, "Internal Server Error".into()),
            Answer::Status(502, "<html>bad gateway</html>".into()),
            Answer::Status(429, r#"{"message":"Too Many Requests"}"#.into()),
            Answer::Status(466, "quota".into()),
            Answer::Status(400, "instance in starting process try later".into()),
            Answer::Status(400, r#"{"message":"Unsupported media type"}"#.into()),
            Answer::Normal,
            Answer::Delay(
                Duration::from_millis(100),
                Box::new(Answer::Status(503, "later".into())),
            ),
        ],
    );
    fake.script(
        "1101000001",
        [Answer::NotApplied("second script call appends".into())],
    );
    let mut client = Client::connect(&fake);
    let mut seen = Vec::new();
    for n in 0..13 {
        let response = client.upload("1101000001", TOKEN, &jpeg(n));
        seen.push((response.status, response.text()));
    }
    let expected: Vec<(u16, String)> = vec![
        (
            200,
            r#"{"urlAvatar":"","setProfilePicture":false,"reason":"rate-overlimit"}"#.into(),
        ),
        (
            200,
            r#"{"reason":"too small","setProfilePicture":false}"#.into(),
        ),
        (200, r#"{"code":401,"description":"Unauthorized"}"#.into()),
        (500, "Internal Server Error".into()),
        (502, "<html>bad gateway</html>".into()),
        (429, r#"{"message":"Too Many Requests"}"#.into()),
        (466, "quota".into()),
        (400, "instance in starting process try later".into()),
        (400, r#"{"message":"Unsupported media type"}"#.into()),
        (
            200,
            json!({
                "urlAvatar": avatar_url(&fake, "1101000001", 2, 640, 0),
                "setProfilePicture": true,
                "reason": null,
            })
            .to_string(),
        ),
        (503, "later".into()),
        (
            200,
            r#"{"reason":"second script call appends","setProfilePicture":false}"#.into(),
        ),
        // The script is used up: the default behaviour again.
        (200, seen[12].1.clone()),
    ];
    // Compare JSON bodies as JSON (key order is not part of the contract).
    for (i, ((status, body), (want_status, want_body))) in seen.iter().zip(&expected).enumerate() {
        assert_eq!(status, want_status, "answer {i}: {body}");
        match (
            serde_json::from_str::<Value>(body),
            serde_json::from_str::<Value>(want_body),
        ) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "answer {i}"),
            _ => assert_eq!(body, want_body, "answer {i}"),
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&seen[12].1).unwrap()["setProfilePicture"],
        true
    );

    let requests = fake.requests();
    let answers: Vec<&str> = requests.iter().map(|r| r.answer.as_str()).collect();
    assert_eq!(
        answers,
        [
            "rate-overlimit",
            "not-applied",
            "unauthorized-200",
            "500",
            "502",
            "429",
            "466",
            "400",
            "400",
            "applied",
            "503",
            "not-applied",
            "applied",
        ]
    );
    assert!(
        requests
            .iter()
            .all(|r| r.token_valid && r.answered_at.is_some())
    );
    let delayed = &requests[10];
    assert!(delayed.answered_at.unwrap() - delayed.received_at >= Duration::from_millis(100));
    assert_eq!(fake.current_picture("1101000001"), Some(sha256(&jpeg(12))));
    // Arrival order is kept.
    assert!(
        requests
            .windows(2)
            .all(|w| w[0].received_at <= w[1].received_at)
    );
}

#[test]
fn a_scripted_reset_drops_the_connection_without_an_answer() {
    let fake = fake();
    fake.script("1101000001", [Answer::ConnectionReset]);
    let mut client = Client::connect(&fake);
    client.send(&post(
        &path("1101000001", TOKEN),
        &multipart("file", "a.jpg", "image/jpeg", JPG),
    ));
    let error = client
        .read_response()
        .expect_err("a reset is not an answer");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionAborted
        ),
        "{error:?}"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].answer, "reset");
    assert_eq!(requests[0].answered_at, None);
    assert_eq!(requests[0].file, JPG, "the whole request was read first");
    assert_eq!(fake.current_picture("1101000001"), None);

    // The fake still serves new connections.
    assert_eq!(upload(&fake, "1101000001", TOKEN, JPG).status, 200);
}

#[test]
fn a_scripted_hang_never_answers_until_the_fake_is_dropped() {
    let fake = fake();
    fake.script("1101000001", [Answer::Hang]);
    let mut client = Client::connect(&fake);
    client.send(&post(
        &path("1101000001", TOKEN),
        &multipart("file", "a.jpg", "image/jpeg", JPG),
    ));
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let error = client.read_response().expect_err("a hang is not an answer");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{error:?}"
    );
    let requests = fake.wait_for_requests(1, SOON);
    assert_eq!(requests[0].answer, "hang");
    assert_eq!(requests[0].answered_at, None);

    // Other connections are served meanwhile.
    fake.add_instance("1101000002", TOKEN);
    assert_eq!(upload(&fake, "1101000002", TOKEN, JPG).status, 200);

    // Dropping the fake ends the hanging request: the client sees the connection close.
    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < SOON,
        "drop took {:?}",
        started.elapsed()
    );
    client.stream.set_read_timeout(Some(SOON)).unwrap();
    let error = client
        .read_response()
        .expect_err("no answer after the drop either");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        "{error:?}"
    );
}

#[test]
fn dropping_the_fake_closes_idle_keep_alive_connections() {
    let fake = fake();
    let mut client = Client::connect(&fake);
    assert_eq!(client.upload("1101000001", TOKEN, JPG).status, 200);
    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < SOON,
        "drop took {:?}",
        started.elapsed()
    );
    let error = client.read_response().expect_err("closed");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        "{error:?}"
    );
}

#[test]
fn latency_delays_answers_but_not_arrival() {
    let fake = fake();
    fake.add_instance("1101000002", TOKEN);
    fake.set_default_latency(Duration::from_millis(100));
    fake.set_latency("1101000002", Duration::from_millis(250));
    assert_eq!(upload(&fake, "1101000001", TOKEN, JPG).status, 200);
    assert_eq!(upload(&fake, "1101000002", TOKEN, JPG).status, 200);
    let requests = fake.requests();
    let waited = |i: usize| requests[i].answered_at.unwrap() - requests[i].received_at;
    assert!(waited(0) >= Duration::from_millis(100), "{:?}", waited(0));
    assert!(waited(1) >= Duration::from_millis(250), "{:?}", waited(1));
    // The call is recorded as soon as it arrives, before the latency.
    fake.set_latency("1101000001", Duration::from_secs(3600));
    let mut client = Client::connect(&fake);
    client.send(&post(
        &path("1101000001", TOKEN),
        &multipart("file", "a.jpg", "image/jpeg", JPG),
    ));
    let requests = fake.wait_for_requests(3, SOON);
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].answered_at, None);
    // Dropping the fake does not wait out the latency.
    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < SOON,
        "drop took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_chunked_body_is_reassembled() {
    let fake = fake();
    let body = multipart("file", "chunked.jpg", "image/jpeg", JPG);
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=\"{BOUNDARY}\"\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        path("1101000001", TOKEN)
    )
    .into_bytes();
    // Uneven chunks, one with an extension, then trailers.
    let mut rest = &body[..];
    for (i, size) in [1usize, 7, 100, 4096, 13].iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        let extension = if i == 2 { ";name=value" } else { "" };
        request.extend_from_slice(format!("{:X}{extension}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
        rest = tail;
    }
    request.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    let mut client = Client::connect(&fake);
    // Sent in small writes so the fake sees partial chunks.
    for piece in request.chunks(333) {
        client.send(piece);
    }
    let response = client.read_response().unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let requests = fake.requests();
    assert_eq!(requests[0].file, JPG);
    assert_eq!(requests[0].filename.as_deref(), Some("chunked.jpg"));
    assert_eq!(requests[0].answer, "applied");
    // The connection stays usable after a chunked request.
    fake.set_rate_window(Duration::ZERO);
    assert_eq!(client.upload("1101000001", TOKEN, JPG).status, 200);
}

#[test]
fn two_requests_share_one_keep_alive_connection_even_when_pipelined() {
    let fake = fake();
    fake.add_instance("1101000002", TOKEN);
    let mut client = Client::connect(&fake);
    let first = client.upload("1101000001", TOKEN, &jpeg(1));
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    let second = client.upload("1101000002", TOKEN, &jpeg(2));
    assert_eq!(second.status, 200);

    // Two requests written at once, the second with `Connection: close`.
    let mut both = post(
        &path("1101000001", TOKEN),
        &multipart("file", "a.jpg", "image/jpeg", &jpeg(3)),
    );
    let close = post(
        &path("1101000002", "bad"),
        &multipart("file", "b.jpg", "image/jpeg", &jpeg(4)),
    );
    let close =
        String::from_utf8_lossy(&close).replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    both.extend_from_slice(close.as_bytes());
    client.send(&both);
    let third = client.read_response().unwrap();
    let fourth = client.read_response().unwrap();
    assert_eq!(third.json()["reason"], "rate-overlimit");
    assert_eq!(fourth.status, 401);
    assert_eq!(fourth.header("connection"), Some("close"));
    assert!(
        client.read_response().is_err(),
        "closed after `Connection: close`"
    );

    let answers: Vec<String> = fake.requests().into_iter().map(|r| r.answer).collect();
    assert_eq!(answers, ["applied", "applied", "rate-overlimit", "401"]);
}

#[test]
fn expect_100_continue_is_honoured() {
    let fake = fake();
    let body = multipart("file", "a.jpg", "image/jpeg", JPG);
    let request = post(&path("1101000001", TOKEN), &body);
    let head_len = request.len() - body.len();
    let head = String::from_utf8_lossy(&request[..head_len]).replacen(
        "\r\n\r\n",
        "\r\nExpect: 100-continue\r\n\r\n",
        1,
    );
    let mut client = Client::connect(&fake);
    client.send(head.as_bytes());
    let interim = client.read_response().unwrap();
    assert_eq!(interim.status, 100);
    client.send(&body);
    assert_eq!(client.read_response().unwrap().status, 200);
}

#[test]
fn multipart_details_are_parsed() {
    let fake = fake();
    fake.set_rate_window(Duration::ZERO);
    // A preamble, a text part before the file, quoted parameters with `;` and escapes, no
    // part Content-Type, and an epilogue.
    let mut body = format!(
        "preamble\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"my \\\"best\\\"; pic.jpg\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(JPG);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\nepilogue").as_bytes());
    let response = Client::connect(&fake).upload_body(&body);
    assert_eq!(response.status, 200, "{response:?}");
    let request = &fake.requests()[0];
    assert_eq!(request.field_name.as_deref(), Some("file"));
    assert_eq!(request.filename.as_deref(), Some("my \"best\"; pic.jpg"));
    assert_eq!(request.part_content_type, None);
    assert_eq!(request.file, JPG);

    // RFC 5987 filename*, and file bytes that contain CRLF and dashes.
    let mut data = jpeg(7);
    data.extend_from_slice(format!("\r\n--{}\r\n--", &BOUNDARY[..10]).as_bytes());
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=file; filename*=UTF-8''caf%C3%A9.jpg\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--").as_bytes());
    assert_eq!(Client::connect(&fake).upload_body(&body).status, 200);
    let request = &fake.requests()[1];
    assert_eq!(request.filename.as_deref(), Some("café.jpg"));
    assert_eq!(request.file, data);
}

#[test]
fn many_concurrent_connections_are_served() {
    let fake = fake();
    fake.set_rate_window(Duration::ZERO);
    let ids: Vec<String> = (0..64).map(|i| format!("22000000{i:02}")).collect();
    for id in &ids {
        fake.add_instance(id, TOKEN);
    }
    let per_connection = 5;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for id in &ids {
            let fake = &fake;
            scope.spawn(move || {
                let mut client = Client::connect(fake);
                for n in 0..per_connection {
                    let response = client.upload(id, TOKEN, &jpeg(n));
                    assert_eq!(response.status, 200, "{response:?}");
                }
            });
        }
    });
    let requests = fake.wait_for_requests(ids.len() * per_connection as usize, SOON);
    assert_eq!(requests.len(), ids.len() * per_connection as usize);
    assert!(requests.iter().all(|r| r.answer == "applied"));
    for id in &ids {
        assert_eq!(fake.requests_for(id).len(), per_connection as usize);
        assert_eq!(
            fake.current_picture(id),
            Some(sha256(&jpeg(per_connection - 1)))
        );
    }
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn wait_for_requests_returns_what_there_is_at_the_timeout() {
    let fake = fake();
    assert!(
        fake.wait_for_requests(1, Duration::from_millis(50))
            .is_empty()
    );
    upload(&fake, "1101000001", TOKEN, JPG);
    assert_eq!(fake.wait_for_requests(1, Duration::ZERO).len(), 1);
    assert_eq!(
        fake.wait_for_requests(2, Duration::from_millis(50)).len(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// What is live: getWaSettings, getStateInstance, getAvatar and the avatar files.

impl Client {
    /// A GET (or, with a body, a JSON POST) of `target`.
    fn request(&mut self, method: &str, target: &str, json_body: Option<&str>) -> Response {
        let body = json_body.unwrap_or("");
        self.send(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        self.read_response().unwrap()
    }

    fn read(&mut self, method: &str) -> Response {
        let target = format!("/waInstance1101000001/{method}/{TOKEN}");
        if method == "getAvatar" {
            self.request("POST", &target, Some(r#"{"chatId":"79001234567@c.us"}"#))
        } else {
            self.request("GET", &target, None)
        }
    }

    /// The avatar file at `url` (one of the fake's).
    fn file(&mut self, fake: &FakeGreenApi, url: &str) -> Response {
        let target = url.strip_prefix(&fake.url()).expect("a URL of the fake");
        self.request("GET", target, None)
    }
}

/// A real, decodable 200 × 120 JPEG.
fn photo(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(200, 120, |x, y| {
        image::Rgb([seed ^ (x as u8), (y as u8).wrapping_mul(2), seed])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&img)
        .unwrap();
    out
}

#[test]
fn an_applied_picture_is_live_as_whatsapp_serves_it() {
    let fake = fake();
    fake.set_read_window(Duration::ZERO);
    let picture = photo(7);
    let mut client = Client::connect(&fake);
    let applied = client.upload("1101000001", TOKEN, &picture).json();
    assert_eq!(
        applied["urlAvatar"],
        avatar_url(&fake, "1101000001", 2, 640, 0)
    );

    let settings = client.read("getWaSettings").json();
    assert_eq!(settings["stateInstance"], "authorized");
    assert_eq!(settings["phone"], "79001234567");
    let thumbnail_url = settings["avatar"].as_str().unwrap().to_owned();
    assert_eq!(thumbnail_url, avatar_url(&fake, "1101000001", 2, 96, 0));
    let avatar = client.read("getAvatar").json();
    assert_eq!(avatar["urlAvatar"], applied["urlAvatar"]);

    // Re-encoded, not the bytes sent: a 96 × 96 centre square, and at most 640 px.
    let thumbnail = client.file(&fake, &thumbnail_url);
    assert_eq!(thumbnail.status, 200);
    assert_eq!(thumbnail.header("content-type"), Some("image/jpeg"));
    assert_ne!(thumbnail.body, picture);
    let decoded = image::load_from_memory(&thumbnail.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (96, 96));
    let full = client.file(&fake, avatar["urlAvatar"].as_str().unwrap());
    let decoded = image::load_from_memory(&full.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (200, 120));
    assert_ne!(full.body, picture);

    // Reads are recorded apart from the calls.
    assert_eq!(fake.request_count(), 1);
    let methods: Vec<String> = fake.reads().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["getWaSettings", "getAvatar", "avatar", "avatar"]);
}

#[test]
fn the_phone_can_change_move_sign_anew_and_remove_the_picture() {
    let fake = fake();
    fake.set_read_window(Duration::ZERO);
    let mut client = Client::connect(&fake);
    client.upload("1101000001", TOKEN, &photo(1));
    let avatar = |client: &mut Client| client.read("getWaSettings").json()["avatar"].clone();

    fake.rotate_signature("1101000001");
    assert_eq!(
        avatar(&mut client),
        avatar_url(&fake, "1101000001", 2, 96, 1)
    );
    fake.move_live_picture("1101000001");
    assert_eq!(
        avatar(&mut client),
        avatar_url(&fake, "1101000001", 3, 96, 1)
    );
    assert_eq!(fake.live_picture("1101000001"), Some(photo(1)));
    // The old path is gone from the CDN.
    let old = client.file(&fake, &avatar_url(&fake, "1101000001", 2, 96, 1));
    assert_eq!(old.status, 404);

    fake.set_live_picture("1101000001", &photo(200));
    assert_eq!(
        avatar(&mut client),
        avatar_url(&fake, "1101000001", 4, 96, 1)
    );
    assert_eq!(fake.live_picture("1101000001"), Some(photo(200)));
    fake.remove_live_picture("1101000001");
    assert_eq!(avatar(&mut client), "");
    assert_eq!(client.read("getAvatar").json()["urlAvatar"], "");
}

#[test]
fn instance_states_are_scriptable_and_gate_uploads() {
    let fake = fake();
    fake.set_read_window(Duration::ZERO);
    let mut client = Client::connect(&fake);
    fake.set_instance_state("1101000001", Some("notAuthorized"));
    assert_eq!(
        client.read("getStateInstance").json(),
        json!({"stateInstance": "notAuthorized"})
    );
    let refused = client.upload("1101000001", TOKEN, &photo(3));
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("not authorized"), "{refused:?}");
    assert_eq!(client.read("getWaSettings").json()["avatar"], "");

    fake.set_instance_state("1101000001", None);
    assert_eq!(client.read("getStateInstance").text(), "null");
    fake.set_instance_state("1101000001", Some("authorized"));
    assert_eq!(client.upload("1101000001", TOKEN, &photo(3)).status, 200);
}

#[test]
fn reads_are_limited_scriptable_and_check_the_token() {
    let fake = fake();
    // A window no loaded machine can overrun between two reads.
    fake.set_read_window(Duration::from_secs(3600));
    let mut client = Client::connect(&fake);
    assert_eq!(client.read("getStateInstance").status, 200);
    assert_eq!(client.read("getStateInstance").status, 429);
    // Another method has its own limit.
    assert_eq!(client.read("getWaSettings").status, 200);

    fake.script_reads(
        "1101000001",
        [
            Answer::Status(500, "down".into()),
            Answer::Delay(
                Duration::from_millis(50),
                Box::new(Answer::Status(502, String::new())),
            ),
        ],
    );
    assert_eq!(client.read("getAvatar").status, 500);
    assert_eq!(client.read("getAvatar").status, 502);
    let wrong = client.request("GET", "/waInstance1101000001/getWaSettings/wrong", None);
    assert_eq!(wrong.status, 401);
    let unknown = client.request("GET", &format!("/waInstance9/getWaSettings/{TOKEN}"), None);
    assert_eq!(unknown.status, 403);

    let answers: Vec<(String, String, bool)> = (fake.reads().into_iter())
        .map(|r| (r.method, r.answer, r.token_valid))
        .collect();
    let row = |m: &str, a: &str, t| (m.to_owned(), a.to_owned(), t);
    assert_eq!(
        answers,
        [
            row("getStateInstance", "200", true),
            row("getStateInstance", "429", true),
            row("getWaSettings", "200", true),
            row("getAvatar", "500", true),
            row("getAvatar", "502", true),
            row("getWaSettings", "401", false),
            row("getWaSettings", "403", false),
        ]
    );
    assert_eq!(fake.request_count(), 0);
    assert!(fake.reads().iter().all(|r| r.answered_at.is_some()));
}
