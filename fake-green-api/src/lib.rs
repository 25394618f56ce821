//! A fake of GREEN-API for tests, the demo and benchmarks: `setProfilePicture`, and what is
//! live on WhatsApp (`getWaSettings`, `getStateInstance`, `getAvatar` and the avatar files,
//! in `live.rs`). A
//! real HTTP/1.1 server on 127.0.0.1 (random port, one thread per connection, keep-alive,
//! `Content-Length` and chunked bodies) that parses the `multipart/form-data` upload, imitates
//! GREEN-API's answers (401 for a wrong token, 403 for an unknown instance, 400 for an empty
//! or non-JPEG file, WhatsApp's `rate-overlimit` when calls come too close together), can be
//! scripted per instance (errors, resets, hangs, delays), and records every call it receives,
//! without ever storing the token. Dropping the [`FakeGreenApi`] stops all of its threads.
//! A dev-only crate of the avatar-sync workspace, used by its tests, its benchmark and its
//! demo, and a program of its own (`src/main.rs`, the README's sandbox); it needs only `std`, `sha2`, `serde_json`, `socket2` and `image` (to re-encode
//! avatars as WhatsApp does).

mod live;

pub use live::{DEFAULT_READ_WINDOW, FULL_SIDE, Read, THUMBNAIL_SIDE};

use sha2::Digest as _;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// WhatsApp's limit between two profile-picture changes of one instance, unless configured.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);

/// How often a connection thread blocked on a read looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long writing an answer may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// JPEG files start with these bytes.
const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// What the fake answers to one request; scripted per instance with [`FakeGreenApi::script`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The default behaviour (file checks, WhatsApp's rate limit, then applied).
    Normal,
    /// 200 `{"urlAvatar":"","setProfilePicture":false,"reason":"rate-overlimit"}`.
    RateOverlimit,
    /// 200 `{"setProfilePicture":false,"reason":<the string>}`.
    NotApplied(String),
    /// 200 `{"code":401,"description":"Unauthorized"}`.
    Unauthorized200,
    /// That HTTP status with that raw body (sent as `application/json`).
    Status(u16, String),
    /// Read the whole request, then reset the TCP connection without answering.
    ConnectionReset,
    /// Read the whole request and never answer (until the fake is dropped).
    Hang,
    /// Sleep, then answer as the inner answer.
    Delay(Duration, Box<Answer>),
}

/// One call the fake received on the `setProfilePicture` path (the token itself is never kept).
#[derive(Clone)]
pub struct Request {
    /// When the request was fully received (before any latency or answer).
    pub received_at: Instant,
    /// When the answer was written (taken just before writing); `None` for a hang or a reset.
    pub answered_at: Option<Instant>,
    /// The idInstance from the path.
    pub instance: String,
    /// Whether the token in the path matched the one registered for the instance.
    pub token_valid: bool,
    /// HTTP method (normally `POST`).
    pub method: String,
    /// The request's `User-Agent` header.
    pub user_agent: Option<String>,
    /// The request's `Content-Type` header.
    pub content_type: Option<String>,
    /// The name of the multipart part taken as the file (expected `file`).
    pub field_name: Option<String>,
    /// That part's `filename`.
    pub filename: Option<String>,
    /// That part's `Content-Type`.
    pub part_content_type: Option<String>,
    /// That part's bytes (empty when there was no part).
    pub file: Vec<u8>,
    /// Lowercase hex SHA-256 of `file`.
    pub file_sha256: String,
    /// A short label of the answer: `applied`, `rate-overlimit`, `not-applied`,
    /// `unauthorized-200`, `reset`, `hang`, or the HTTP status (`401`, `403`, `400`, `500`, …).
    pub answer: String,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("received_at", &self.received_at)
            .field("answered_at", &self.answered_at)
            .field("instance", &self.instance)
            .field("token_valid", &self.token_valid)
            .field("method", &self.method)
            .field("user_agent", &self.user_agent)
            .field("content_type", &self.content_type)
            .field("field_name", &self.field_name)
            .field("filename", &self.filename)
            .field("part_content_type", &self.part_content_type)
            .field("file", &format_args!("<{} bytes>", self.file.len()))
            .field("file_sha256", &self.file_sha256)
            .field("answer", &self.answer)
            .finish()
    }
}

/// The fake GREEN-API server; its threads stop when it is dropped.
pub struct FakeGreenApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeGreenApi {
    /// Binds 127.0.0.1 on a random port and starts serving.
    pub fn start() -> FakeGreenApi {
        FakeGreenApi::start_on(0).expect("fake GREEN-API: bind 127.0.0.1:0")
    }

    /// Binds 127.0.0.1:`port` (0: a free one) and starts serving; the error when the port
    /// is taken. The sandbox binary gives its port on the command line.
    pub fn start_on(port: u16) -> std::io::Result<FakeGreenApi> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                instances: HashMap::new(),
                requests: Vec::new(),
                reads: Vec::new(),
                default_latency: Duration::ZERO,
                rate_window: DEFAULT_RATE_WINDOW,
                read_window: DEFAULT_READ_WINDOW,
                base: format!("http://{addr}"),
                next_path: 1,
                shown: HashMap::new(),
                keep_files: true,
            }),
            recorded: Condvar::new(),
            stopped: Mutex::new(false),
            stop_signal: Condvar::new(),
        });
        let acceptor = thread::Builder::new()
            .name("fake-green-api".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(listener, shared)
            })?;
        Ok(FakeGreenApi {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers instance `id` with `token` (or replaces its token).
    pub fn add_instance(&self, id: &str, token: &str) {
        let mut state = self.shared.state();
        state.instance(id).token = Some(token.to_owned());
    }

    /// Appends answers to instance `id`'s script, consumed one per authorised request.
    pub fn script(&self, id: &str, answers: impl IntoIterator<Item = Answer>) {
        let answers: Vec<Answer> = answers.into_iter().collect();
        let mut state = self.shared.state();
        state.instance(id).script.extend(answers);
    }

    /// Drops what is left of instance `id`'s script: it answers normally from now on.
    pub fn clear_script(&self, id: &str) {
        self.shared.state().instance(id).script.clear();
    }

    /// Sleeps `latency` before answering any request of instance `id` (overrides the default).
    pub fn set_latency(&self, id: &str, latency: Duration) {
        let mut state = self.shared.state();
        state.instance(id).latency = Some(latency);
    }

    /// Sleeps `latency` before answering any request of an instance without its own latency.
    pub fn set_default_latency(&self, latency: Duration) {
        self.shared.state().default_latency = latency;
    }

    /// Sets WhatsApp's limit: a call arriving less than `window` after the previous authorised
    /// call of the same instance gets `rate-overlimit` (default [`DEFAULT_RATE_WINDOW`]).
    pub fn set_rate_window(&self, window: Duration) {
        self.shared.state().rate_window = window;
    }

    /// Whether recorded requests keep the uploaded bytes (default: yes). A benchmark
    /// sending 100,000 pictures turns it off and keeps only their SHA-256 (`file` is empty).
    pub fn set_keep_files(&self, keep: bool) {
        self.shared.state().keep_files = keep;
    }

    /// Every recorded request, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The recorded requests of instance `id`, in arrival order.
    pub fn requests_for(&self, id: &str) -> Vec<Request> {
        let state = self.shared.state();
        state
            .requests
            .iter()
            .filter(|r| r.instance == id)
            .cloned()
            .collect()
    }

    /// The recorded requests from the `from`-th on (none when fewer were recorded): what
    /// arrived since a caller last looked, without copying the ones it has seen.
    pub fn requests_since(&self, from: usize) -> Vec<Request> {
        let state = self.shared.state();
        state.requests.get(from..).unwrap_or_default().to_vec()
    }

    /// The reads from the `from`-th on, as [`FakeGreenApi::requests_since`].
    pub fn reads_since(&self, from: usize) -> Vec<Read> {
        let state = self.shared.state();
        state.reads.get(from..).unwrap_or_default().to_vec()
    }

    /// How many requests were recorded.
    pub fn request_count(&self) -> usize {
        self.shared.state().requests.len()
    }

    /// Waits until at least `n` requests are recorded or `timeout` passes; returns them all.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let state = self.shared.state();
        let (state, _) = self
            .shared
            .recorded
            .wait_timeout_while(state, timeout, |s| s.requests.len() < n)
            .unwrap_or_else(PoisonError::into_inner);
        state.requests.clone()
    }

    /// The reads received (GREEN-API read methods and avatar files), apart from the
    /// `setProfilePicture` calls.
    pub fn reads(&self) -> Vec<Read> {
        self.shared.state().reads.clone()
    }

    /// The reads of instance `id`.
    pub fn reads_for(&self, id: &str) -> Vec<Read> {
        let state = self.shared.state();
        state
            .reads
            .iter()
            .filter(|r| r.instance == id)
            .cloned()
            .collect()
    }

    /// The least time between two reads of one method for one instance (429 when faster);
    /// `getAvatar` allows ten times as many.
    pub fn set_read_window(&self, window: Duration) {
        self.shared.state().read_window = window;
    }

    /// Appends answers to instance `id`'s read script, consumed one per authorised read.
    pub fn script_reads(&self, id: &str, answers: impl IntoIterator<Item = Answer>) {
        let mut state = self.shared.state();
        state.instance(id).read_script.extend(answers);
    }

    /// The picture changed "from the phone": `picture` is shown under a new CDN path.
    pub fn set_live_picture(&self, id: &str, picture: &[u8]) {
        let mut state = self.shared.state();
        let path = state.new_path();
        state.instance(id).live.show(Some(picture.into()), path);
    }

    /// From now on, every picture applied to instance `id` shows as `picture` instead (a
    /// CDN serving another picture, a re-encode gone wrong): `setProfilePicture` answers
    /// applied with the upload's URL, and `getWaSettings` links to `picture` under another
    /// path.
    pub fn show_instead(&self, id: &str, picture: &[u8]) {
        self.shared.state().instance(id).shows_instead = Some(picture.into());
    }

    /// The picture removed "from the phone".
    pub fn remove_live_picture(&self, id: &str) {
        let mut state = self.shared.state();
        let path = state.new_path();
        state.instance(id).live.show(None, path);
    }

    /// The same picture served under a new CDN path (as WhatsApp sometimes does).
    pub fn move_live_picture(&self, id: &str) {
        let mut state = self.shared.state();
        let path = state.new_path();
        let live = &mut state.instance(id).live;
        let picture = live.picture.take();
        live.show(picture, path);
    }

    /// A new signature (`oh`, `oe`) on the same path and picture.
    pub fn rotate_signature(&self, id: &str) {
        self.shared.state().instance(id).live.signature += 1;
    }

    /// Instance `id`'s `stateInstance` (`authorized`, `notAuthorized`, `blocked`, …);
    /// `None` answers `getStateInstance` with the body `null`. Uploads to an instance that
    /// is not `authorized` are answered 400 "Instance not authorized".
    pub fn set_instance_state(&self, id: &str, state: Option<&str>) {
        self.shared.state().instance(id).live.state = state.map(str::to_owned);
    }

    /// The picture instance `id` shows, as it was uploaded or set.
    pub fn live_picture(&self, id: &str) -> Option<Vec<u8>> {
        let state = self.shared.state();
        Some(state.instances.get(id)?.live.picture.as_deref()?.to_vec())
    }

    /// Lowercase hex SHA-256 of the last picture applied to instance `id`.
    pub fn current_picture(&self, id: &str) -> Option<String> {
        let state = self.shared.state();
        state.instances.get(id)?.current_picture.clone()
    }
}

impl Drop for FakeGreenApi {
    fn drop(&mut self) {
        self.shared.stop();
        // Wake the acceptor, blocked in accept(), by connecting to it.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok();
        if let Some(acceptor) = self.acceptor.take()
            && (woke || acceptor.is_finished())
        {
            let _ = acceptor.join();
        }
    }
}

/// State shared by the handle, the acceptor and the connection threads.
struct Shared {
    state: Mutex<State>,
    recorded: Condvar,
    stopped: Mutex<bool>,
    stop_signal: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    fn stop(&self) {
        *lock(&self.stopped) = true;
        self.stop_signal.notify_all();
    }

    /// Sleeps for `duration` unless the fake stops first; returns whether it is still running.
    fn sleep(&self, duration: Duration) -> bool {
        let stopped = lock(&self.stopped);
        let (stopped, _) = self
            .stop_signal
            .wait_timeout_while(stopped, duration, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        !*stopped
    }

    /// Blocks until the fake stops.
    fn wait_stopped(&self) {
        let stopped = lock(&self.stopped);
        let _stopped = self
            .stop_signal
            .wait_while(stopped, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct State {
    instances: HashMap<String, Instance>,
    requests: Vec<Request>,
    reads: Vec<Read>,
    default_latency: Duration,
    rate_window: Duration,
    read_window: Duration,
    /// `http://127.0.0.1:PORT`, for avatar URLs.
    base: String,
    /// The next CDN path number.
    next_path: u64,
    /// Uploaded pictures by SHA-256, shared by the instances that show them.
    shown: HashMap<String, Arc<[u8]>>,
    /// Whether uploads' bytes are kept in [`Request::file`] (their SHA-256 always is).
    keep_files: bool,
}

impl State {
    fn instance(&mut self, id: &str) -> &mut Instance {
        self.instances.entry(id.to_owned()).or_default()
    }

    fn new_path(&mut self) -> u64 {
        self.next_path += 1;
        self.next_path
    }
}

#[derive(Default)]
struct Instance {
    /// `None` until [`FakeGreenApi::add_instance`]: such an instance is unknown (403).
    token: Option<String>,
    script: VecDeque<Answer>,
    latency: Option<Duration>,
    /// Arrival of the previous authorised call, for WhatsApp's limit.
    last_arrival: Option<Instant>,
    current_picture: Option<String>,
    /// What WhatsApp shows, and the scripted answers to reads.
    live: live::Live,
    read_script: VecDeque<Answer>,
    /// Shown instead of every picture applied ([`FakeGreenApi::show_instead`]).
    shows_instead: Option<Arc<[u8]>>,
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shared.is_stopped() {
            break;
        }
        match stream {
            Ok(stream) => {
                connections.retain(|c| !c.is_finished());
                let conn_shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name("fake-green-api-conn".into())
                    .spawn(move || serve_connection(&conn_shared, stream));
                if let Ok(handle) = spawned {
                    connections.push(handle);
                }
            }
            // E.g. out of file descriptors: back off a little.
            Err(_) => {
                shared.sleep(Duration::from_millis(10));
            }
        }
    }
    drop(listener);
    for connection in connections {
        let _ = connection.join();
    }
}

/// Why reading a request stopped.
enum Fail {
    /// The connection closed, failed, or the fake stopped: drop it silently.
    Gone,
    /// A malformed or oversized request: answer this status, then close.
    Bad(u16),
}

/// A connection's socket and the bytes read from it but not consumed yet.
struct Conn<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: &'a Shared,
}

impl Conn<'_> {
    /// Reads more bytes; `Ok(false)` at end of stream.
    fn fill(&mut self) -> Result<bool, Fail> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.shared.is_stopped() {
                return Err(Fail::Gone);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(Fail::Gone),
            }
        }
    }

    /// Reads a request head, through its blank line; `Ok(None)` at a clean end of stream.
    fn read_head(&mut self) -> Result<Option<Vec<u8>>, Fail> {
        let mut searched = 0;
        loop {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            let blank = self
                .buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank > 0 {
                self.buf.drain(..blank);
                searched = 0;
            }
            if let Some(pos) = find(&self.buf[searched..], b"\r\n\r\n") {
                let end = searched + pos + 4;
                return Ok(Some(self.take(end)?));
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err(Fail::Bad(431));
            }
            if !self.fill()? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Fail::Gone)
                };
            }
        }
    }

    /// Takes exactly `n` bytes.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, Fail> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(Fail::Gone);
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Takes one line, without its CRLF.
    fn line(&mut self) -> Result<Vec<u8>, Fail> {
        let mut searched = 0;
        loop {
            if let Some(pos) = find(&self.buf[searched..], b"\r\n") {
                let mut line = self.take(searched + pos + 2)?;
                line.truncate(line.len() - 2);
                return Ok(line);
            }
            searched = self.buf.len().saturating_sub(1);
            if self.buf.len() > MAX_HEAD {
                return Err(Fail::Bad(400));
            }
            if !self.fill()? {
                return Err(Fail::Gone);
            }
        }
    }

    /// Reads the body the head announces.
    fn read_body(&mut self, head: &Head) -> Result<Vec<u8>, Fail> {
        let chunked = head.header("transfer-encoding").is_some_and(|te| {
            te.split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            return self.read_chunked();
        }
        let Some(length) = head.header("content-length") else {
            return Ok(Vec::new());
        };
        let length: usize = length.trim().parse().map_err(|_| Fail::Bad(400))?;
        if length > MAX_BODY {
            return Err(Fail::Bad(413));
        }
        self.take(length)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, Fail> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| Fail::Bad(400))?;
            if size == 0 {
                // Trailers, up to a blank line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(Fail::Bad(413));
            }
            body.extend_from_slice(&self.take(size)?);
            if self.take(2)? != b"\r\n" {
                return Err(Fail::Bad(400));
            }
        }
    }
}

/// A parsed request line and headers (names lowercased).
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Option<Head> {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next()?.split(' ').filter(|p| !p.is_empty());
        let method = request_line.next()?.to_owned();
        let target = request_line.next()?.to_owned();
        let version = request_line.next()?.to_owned();
        if request_line.next().is_some() || !version.starts_with("HTTP/1.") {
            return None;
        }
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(Head {
            method,
            target,
            version,
            headers,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn keep_alive(&self) -> bool {
        if self.version == "HTTP/1.0" {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// What to do after the delay.
enum Action {
    Respond { status: u16, body: String },
    Picture(Vec<u8>),
    Reset,
    Hang,
}

/// Where a request was recorded.
#[derive(Clone, Copy)]
enum Recorded {
    Call(usize),
    Read(usize),
}

/// The decision for one request.
struct Outcome {
    recorded: Option<Recorded>,
    delay: Duration,
    action: Action,
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(POLL)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        shared,
    };
    loop {
        let head = match conn.read_head() {
            Ok(Some(head)) => head,
            Ok(None) | Err(Fail::Gone) => return,
            Err(Fail::Bad(status)) => {
                let _ = write_response(&mut conn.stream, status, "text/plain", b"", false);
                return;
            }
        };
        let Some(head) = Head::parse(&head) else {
            let _ = write_response(&mut conn.stream, 400, "text/plain", b"", false);
            return;
        };
        if head.has_token("expect", "100-continue")
            && conn
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return;
        }
        let body = match conn.read_body(&head) {
            Ok(body) => body,
            Err(Fail::Gone) => return,
            Err(Fail::Bad(status)) => {
                let _ = write_response(&mut conn.stream, status, "text/plain", b"", false);
                return;
            }
        };
        let keep_alive = head.keep_alive();
        let outcome = handle(shared, &head, body);
        if !shared.sleep(outcome.delay) {
            return;
        }
        let answered = |shared: &Shared| match outcome.recorded {
            Some(Recorded::Call(index)) => {
                shared.state().requests[index].answered_at = Some(Instant::now());
            }
            Some(Recorded::Read(index)) => {
                shared.state().reads[index].answered_at = Some(Instant::now());
            }
            None => {}
        };
        match outcome.action {
            Action::Respond { status, body } => {
                answered(shared);
                let json = "application/json";
                if write_response(&mut conn.stream, status, json, body.as_bytes(), keep_alive)
                    .is_err()
                    || !keep_alive
                {
                    return;
                }
            }
            Action::Picture(bytes) => {
                answered(shared);
                if write_response(&mut conn.stream, 200, "image/jpeg", &bytes, keep_alive).is_err()
                    || !keep_alive
                {
                    return;
                }
            }
            Action::Reset => {
                let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
                return;
            }
            Action::Hang => {
                shared.wait_stopped();
                return;
            }
        }
    }
}

/// Decides the answer to one fully received request and records it.
fn handle(shared: &Shared, head: &Head, body: Vec<u8>) -> Outcome {
    if let Some((id, path, side)) = live::avatar_target(&head.target) {
        return avatar_file(shared, id, path, side);
    }
    let (id, token) = match endpoint(&head.target) {
        Some((id, "setProfilePicture", token)) => (id, token),
        Some((id, method, token)) => return read(shared, id, method, token),
        None => {
            let delay = shared.state().default_latency;
            return Outcome {
                recorded: None,
                delay,
                action: respond(404, String::new()),
            };
        }
    };
    // Parse and hash outside the lock.
    let content_type = head.header("content-type").map(str::to_owned);
    let part = content_type
        .as_deref()
        .and_then(boundary)
        .map(|b| pick_part(parse_multipart(&body, &b)))
        .unwrap_or_default();
    drop(body);
    let file_sha256 = hex(&sha2::Sha256::digest(&part.data));
    let is_file_part = part.name.as_deref() == Some("file");

    let mut state = shared.state();
    let received_at = Instant::now();
    let default_latency = state.default_latency;
    let rate_window = state.rate_window;
    let base = state.base.clone();
    let mut token_valid = false;
    let State {
        instances,
        next_path,
        shown,
        ..
    } = &mut *state;
    let (delay, label, action) = if head.method != "POST" {
        (
            default_latency,
            "404".to_owned(),
            respond(404, String::new()),
        )
    } else {
        match authorised(instances, id, token, default_latency) {
            Err(refused) => refused,
            Ok(instance) => {
                token_valid = true;
                let latency = instance.latency.unwrap_or(default_latency);
                let previous = instance.last_arrival.replace(received_at);
                let answer = instance.script.pop_front().unwrap_or(Answer::Normal);
                let mut normal = || {
                    if !is_file_part || part.data.is_empty() {
                        (
                            "400".to_owned(),
                            respond(400, r#"{"message":"File is empty"}"#.to_owned()),
                        )
                    } else if !part.data.starts_with(&JPEG_MAGIC) {
                        (
                            "400".to_owned(),
                            respond(400, r#"{"message":"Unsupported media type"}"#.to_owned()),
                        )
                    } else if !instance.live.authorized() {
                        (
                            "400".to_owned(),
                            respond(400, r#"{"message":"Instance not authorized"}"#.to_owned()),
                        )
                    } else if previous.is_some_and(|p| received_at.duration_since(p) < rate_window)
                    {
                        ("rate-overlimit".to_owned(), rate_overlimit())
                    } else {
                        instance.current_picture = Some(file_sha256.clone());
                        *next_path += 1;
                        // One copy of each distinct upload, however many instances show it.
                        let shown = shown
                            .entry(file_sha256.clone())
                            .or_insert_with(|| part.data.as_slice().into());
                        instance.live.show(Some(Arc::clone(shown)), *next_path);
                        let url = instance.live.url(&base, id, live::FULL_SIDE);
                        if let Some(instead) = instance.shows_instead.clone() {
                            *next_path += 1;
                            instance.live.show(Some(instead), *next_path);
                        }
                        let body = serde_json::json!({
                            "urlAvatar": url,
                            "setProfilePicture": true,
                            "reason": null,
                        });
                        ("applied".to_owned(), respond(200, body.to_string()))
                    }
                };
                let (extra, label, action) = resolve(answer, &mut normal);
                (latency + extra, label, action)
            }
        }
    };
    let file = if state.keep_files {
        part.data
    } else {
        Vec::new()
    };
    state.requests.push(Request {
        received_at,
        answered_at: None,
        instance: id.to_owned(),
        token_valid,
        method: head.method.clone(),
        user_agent: head.header("user-agent").map(str::to_owned),
        content_type,
        field_name: part.name,
        filename: part.filename,
        part_content_type: part.content_type,
        file,
        file_sha256,
        answer: label,
    });
    let index = state.requests.len() - 1;
    drop(state);
    shared.recorded.notify_all();
    Outcome {
        recorded: Some(Recorded::Call(index)),
        delay,
        action,
    }
}

/// Instance `id` when `token` is its own; else what GREEN-API answers (delay, label,
/// action): 401 for another token, after the instance's latency; 403 for an unknown
/// instance.
fn authorised<'a>(
    instances: &'a mut HashMap<String, Instance>,
    id: &str,
    token: &str,
    default_latency: Duration,
) -> Result<&'a mut Instance, (Duration, String, Action)> {
    match instances.get_mut(id) {
        Some(instance) if instance.token.as_deref() == Some(token) => Ok(instance),
        Some(instance) if instance.token.is_some() => Err((
            instance.latency.unwrap_or(default_latency),
            "401".to_owned(),
            respond(401, String::new()),
        )),
        _ => Err((
            default_latency,
            "403".to_owned(),
            respond(403, String::new()),
        )),
    }
}

/// A GREEN-API read (`getWaSettings`, `getStateInstance`, `getAvatar`): token checked,
/// scripted answers first, then the read limit, then what is live.
fn read(shared: &Shared, id: &str, method: &str, token: &str) -> Outcome {
    let mut state = shared.state();
    let received_at = Instant::now();
    let (default_latency, window, base) =
        (state.default_latency, state.read_window, state.base.clone());
    let known = ["getWaSettings", "getStateInstance", "getAvatar"].contains(&method);
    let mut token_valid = false;
    let (delay, label, action) = if !known {
        (
            default_latency,
            "404".to_owned(),
            respond(404, String::new()),
        )
    } else {
        match authorised(&mut state.instances, id, token, default_latency) {
            Err(refused) => refused,
            Ok(instance) => {
                token_valid = true;
                let latency = instance.latency.unwrap_or(default_latency);
                let answer = instance.read_script.pop_front().unwrap_or(Answer::Normal);
                let live = &mut instance.live;
                let mut normal = || {
                    // getAvatar allows 10 a second.
                    let window = if method == "getAvatar" {
                        window / 10
                    } else {
                        window
                    };
                    if !live.allow_read(method, received_at, window) {
                        return ("429".to_owned(), respond(429, String::new()));
                    }
                    let body = match method {
                        "getWaSettings" => serde_json::json!({
                            "avatar": live.url(&base, id, live::THUMBNAIL_SIDE),
                            "phone": live.phone,
                            "stateInstance": live.state.as_deref().unwrap_or("notAuthorized"),
                            "deviceId": "fake",
                        })
                        .to_string(),
                        "getStateInstance" => match &live.state {
                            Some(s) => serde_json::json!({ "stateInstance": s }).to_string(),
                            None => "null".to_owned(),
                        },
                        _ => serde_json::json!({
                            "urlAvatar": live.url(&base, id, live::FULL_SIDE),
                            "available": live.picture.is_some(),
                        })
                        .to_string(),
                    };
                    ("200".to_owned(), respond(200, body))
                };
                let (extra, label, action) = resolve(answer, &mut normal);
                (latency + extra, label, action)
            }
        }
    };
    state.reads.push(Read {
        received_at,
        answered_at: None,
        instance: id.to_owned(),
        method: method.to_owned(),
        token_valid,
        answer: label,
    });
    let index = state.reads.len() - 1;
    drop(state);
    shared.recorded.notify_all();
    Outcome {
        recorded: Some(Recorded::Read(index)),
        delay,
        action,
    }
}

/// An avatar file, as WhatsApp's CDN serves it: 404 once the picture changed.
fn avatar_file(shared: &Shared, id: &str, path: u64, side: u32) -> Outcome {
    let mut state = shared.state();
    let received_at = Instant::now();
    let delay = state.default_latency;
    let file = (state.instances.get_mut(id)).and_then(|instance| instance.live.file(path, side));
    let (label, action) = match file {
        Some(bytes) => ("200".to_owned(), Action::Picture(bytes)),
        None => ("404".to_owned(), respond(404, String::new())),
    };
    state.reads.push(Read {
        received_at,
        answered_at: None,
        instance: id.to_owned(),
        method: "avatar".to_owned(),
        token_valid: true,
        answer: label,
    });
    let index = state.reads.len() - 1;
    drop(state);
    shared.recorded.notify_all();
    Outcome {
        recorded: Some(Recorded::Read(index)),
        delay,
        action,
    }
}

/// Turns a scripted answer into (extra delay, label, action); `normal` is the default behaviour.
fn resolve(
    mut answer: Answer,
    normal: &mut dyn FnMut() -> (String, Action),
) -> (Duration, String, Action) {
    let mut delay = Duration::ZERO;
    loop {
        let (label, action) = match answer {
            Answer::Delay(d, inner) => {
                delay = delay.saturating_add(d);
                answer = *inner;
                continue;
            }
            Answer::Normal => normal(),
            Answer::RateOverlimit => ("rate-overlimit".to_owned(), rate_overlimit()),
            Answer::NotApplied(reason) => {
                let body = serde_json::json!({"setProfilePicture": false, "reason": reason});
                ("not-applied".to_owned(), respond(200, body.to_string()))
            }
            Answer::Unauthorized200 => (
                "unauthorized-200".to_owned(),
                respond(
                    200,
                    r#"{"code":401,"description":"Unauthorized"}"#.to_owned(),
                ),
            ),
            Answer::Status(status, body) => (status.to_string(), respond(status, body)),
            Answer::ConnectionReset => ("reset".to_owned(), Action::Reset),
            Answer::Hang => ("hang".to_owned(), Action::Hang),
        };
        return (delay, label, action);
    }
}

fn respond(status: u16, body: String) -> Action {
    Action::Respond { status, body }
}

fn rate_overlimit() -> Action {
    respond(
        200,
        r#"{"urlAvatar":"","setProfilePicture":false,"reason":"rate-overlimit"}"#.to_owned(),
    )
}

/// `(idInstance, method, apiTokenInstance)` of a `/waInstance{id}/{method}/{token}` target.
fn endpoint(target: &str) -> Option<(&str, &str, &str)> {
    let path = target.split(['?', '#']).next()?;
    // Absolute form: http://host:port/path.
    let path = match path.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/')?..],
        None => path,
    };
    let (id, rest) = path.strip_prefix("/waInstance")?.split_once('/')?;
    let (method, token) = rest.split_once('/')?;
    let token = token.strip_suffix('/').unwrap_or(token);
    if id.is_empty() || method.is_empty() || token.is_empty() || token.contains('/') {
        return None;
    }
    Some((id, method, token))
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason_phrase(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// One multipart part.
#[derive(Default)]
struct Part {
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// The `boundary` of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty())
}

/// The parts of a multipart body (RFC 2046 §5.1.1); stops at the first malformed spot.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut pos = if body.starts_with(delimiter.as_bytes()) {
        delimiter.len()
    } else {
        match find(body, next_delimiter.as_bytes()) {
            Some(p) => p + next_delimiter.len(),
            None => return parts,
        }
    };
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return parts;
        }
        // Transport padding, then the CRLF ending the delimiter line.
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        pos += padding;
        if !body[pos..].starts_with(b"\r\n") {
            return parts;
        }
        pos += 2;
        let (header_text, content_start) = if body[pos..].starts_with(b"\r\n") {
            (String::new(), pos + 2)
        } else {
            match find(&body[pos..], b"\r\n\r\n") {
                Some(end) => (
                    String::from_utf8_lossy(&body[pos..pos + end]).into_owned(),
                    pos + end + 4,
                ),
                None => return parts,
            }
        };
        let Some(length) = find(&body[content_start..], next_delimiter.as_bytes()) else {
            return parts;
        };
        let mut part = Part {
            data: body[content_start..content_start + length].to_vec(),
            ..Part::default()
        };
        for line in header_text.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-disposition") {
                let (_, params) = value.split_once(';').unwrap_or((value, ""));
                let params = parameters(params);
                let get = |key: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v.clone())
                };
                part.name = get("name");
                part.filename = get("filename").or_else(|| get("filename*").map(|v| ext_value(&v)));
            } else if name.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_owned());
            }
        }
        parts.push(part);
        pos = content_start + length + next_delimiter.len();
    }
}

/// The part taken as the upload: the one named `file`, else the first with a filename, else
/// the first.
fn pick_part(mut parts: Vec<Part>) -> Part {
    let index = parts
        .iter()
        .position(|p| p.name.as_deref() == Some("file"))
        .or_else(|| parts.iter().position(|p| p.filename.is_some()));
    match index {
        Some(i) => parts.swap_remove(i),
        None if !parts.is_empty() => parts.swap_remove(0),
        None => Part::default(),
    }
}

/// `key=value` parameters separated by `;`, values unquoted (quotes may hide `;`).
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            pieces.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    pieces.push(current);
    for piece in pieces {
        if let Some((key, value)) = piece.split_once('=') {
            out.push((key.trim().to_owned(), unquote(value.trim())));
        }
    }
    out
}

/// A quoted-string's content, with backslash escapes undone; other values as they are.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An RFC 5987 `charset'lang'percent-encoded` value, decoded (as UTF-8, lossily).
fn ext_value(value: &str) -> String {
    let encoded = value.splitn(3, '\'').nth(2).unwrap_or(value);
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut start = 0;
    while start + needle.len() <= haystack.len() {
        let offset = haystack[start..=haystack.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let at = start + offset;
        if haystack[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
