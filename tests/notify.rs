//! Notifications end to end: the real binary as a daemon against the GREEN-API fake, and a
//! real webhook receiver on 127.0.0.1 that records every request's headers and body and
//! answers as a test tells it (2xx, 500, or never). Exact messages for a failure told
//! after 3 in a row and its recovery, a failed upload, a drift; the HMAC checked here with
//! the secret; a kill -9 between writing a message and its delivery.

use crate::util::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const A: &str = "1101000001";
const B: &str = "1101000002";
const SECRET: &str = "hook-secret-0123456789";

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Answer(u16),
    /// Read the request, never answer.
    Hang,
}

/// One request the receiver read.
#[derive(Clone, Debug)]
struct Hook {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    answered: Option<u16>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    hooks: Arc<Mutex<Vec<Hook>>>,
}

impl Receiver {
    fn start() -> Self {
        Self::start_on(0)
    }

    /// A receiver on `port` of 127.0.0.1 (0: any free one).
    fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Answer(200)));
        let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let (m, h) = (Arc::clone(&mode), Arc::clone(&hooks));
        std::thread::spawn(move || {
            let mut hung: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(mut hook) = read_request(&stream) else {
                    continue;
                };
                let mode = *m.lock().unwrap();
                match mode {
                    Mode::Answer(code) => {
                        hook.answered = Some(code);
                        h.lock().unwrap().push(hook);
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\nLocation: /elsewhere\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        );
                    }
                    Mode::Hang => {
                        h.lock().unwrap().push(hook);
                        hung.push(stream);
                    }
                }
            }
        });
        Self { port, mode, hooks }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// The requests to `path` answered 2xx.
    fn delivered(&self, path: &str) -> Vec<Hook> {
        (self.hooks().into_iter())
            .filter(|h| h.path == path && h.answered.is_some_and(|c| (200..300).contains(&c)))
            .collect()
    }

    fn wait_for(&self, daemon: &Daemon, path: &str, n: usize) -> Vec<Hook> {
        daemon.wait_until(&format!("{n} messages to {path}"), || {
            self.delivered(path).len() >= n
        });
        self.delivered(path)
    }
}

fn read_request(stream: &TcpStream) -> Option<Hook> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = (headers.iter())
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Hook {
        path,
        headers,
        body: String::from_utf8(body).ok()?,
        answered: None,
    })
}

/// `sha256=<hex>` of `body` under [`SECRET`], computed here, independently of the binary.
fn hmac_of(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = (mac.finalize().into_bytes().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// `body` without `id` and `time`, after checking their shape: the rest is compared whole.
fn fixed_part(hook: &Hook) -> Value {
    let mut body = hook.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{body}");
    assert_eq!(hook.header("X-Avatar-Sync-Id"), Some(id.as_str()));
    let time = body["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    let object = body.as_object_mut().unwrap();
    object.remove("id");
    object.remove("time");
    body
}

#[test]
fn a_failure_is_told_after_3_in_a_row_and_its_recovery_once_signed_and_to_slack() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    world.instance(A);
    world.instance(B);
    world.write("pictures/a.jpg", &jpeg(1));
    world.write("pictures/b.jpg", &jpeg(2));
    world.write("hook.secret", format!("{SECRET}\n").as_bytes());
    let error = || fake_green_api::Answer::Status(500, "{\"message\":\"boom\"}".to_owned());
    world.fake.script(A, [error(), error(), error()]);
    world.fake.script(
        B,
        [fake_green_api::Answer::Status(
            400,
            "File is empty".to_owned(),
        )],
    );
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\nnotify:\n  - url: {}\n    secretFile: hook.secret\n    events: [failed]\n    after: 3\n  - url: {}\n    format: slack\n    events: [failed]\ninstances:\n  - idInstance: \"{A}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/a.jpg\n  - idInstance: \"{B}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/b.jpg\n",
        receiver.url("/json"),
        receiver.url("/slack"),
    ));
    let daemon = Daemon::start(&world, &["-v", "--listen", "127.0.0.1:0"]);
    let told = receiver.wait_for(&daemon, "/json", 2);
    let slack = receiver.wait_for(&daemon, "/slack", 3);
    // A few seconds more: nothing else is told (A is applied, B waits for a new picture).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.delivered("/json").len(), 2);
    assert_eq!(receiver.delivered("/slack").len(), 3);

    let requests = world.fake.requests_for(A);
    assert_eq!(requests.len(), 4, "three 500s, then applied");
    let a_sha = sha256(&requests[3].file);
    let b_sha = sha256(&world.fake.requests_for(B)[0].file);
    assert_eq!(
        fixed_part(&told[0]),
        json!({
            "version": 1,
            "event": "failed",
            "instance": A,
            "revision": null,
            "picture": "pictures/a.jpg",
            "desiredSha256": a_sha,
            "appliedSha256": null,
            "outcome": "server-error",
            "consecutive": 3,
            "detail": "GREEN-API answered 500: {\"message\":\"boom\"}",
            "text": format!("avatar-sync: instance {A} failed 3 time(s) in a row to set picture {} (server-error: GREEN-API answered 500: {{\"message\":\"boom\"}})", &a_sha[..12]),
        })
    );
    assert_eq!(
        fixed_part(&told[1]),
        json!({
            "version": 1,
            "event": "recovered",
            "instance": A,
            "revision": null,
            "picture": "pictures/a.jpg",
            "desiredSha256": a_sha,
            "appliedSha256": a_sha,
            "outcome": "applied",
            "consecutive": 3,
            "detail": null,
            "text": format!("avatar-sync: instance {A} recovered: picture {} set after 3 failure(s)", &a_sha[..12]),
        })
    );
    for hook in &told {
        assert_eq!(
            hook.header("X-Avatar-Sync-Signature"),
            Some(hmac_of(&hook.body).as_str())
        );
        assert_eq!(hook.header("Content-Type"), Some("application/json"));
    }
    // Slack: `after` is 1 there, so B's refused upload and A's first failure are told.
    let texts: Vec<Value> = slack.iter().map(Hook::json).collect();
    assert!(
        slack
            .iter()
            .all(|h| h.header("X-Avatar-Sync-Signature").is_none())
    );
    let mut expected = vec![
        json!({"text": format!("avatar-sync: instance {A} failed 1 time(s) in a row to set picture {} (server-error: GREEN-API answered 500: {{\"message\":\"boom\"}})", &a_sha[..12])}),
        json!({"text": format!("avatar-sync: instance {B} failed 1 time(s) in a row to set picture {} (refused-bytes: GREEN-API answered 400: File is empty)", &b_sha[..12])}),
        json!({"text": format!("avatar-sync: instance {A} recovered: picture {} set after 3 failure(s)", &a_sha[..12])}),
    ];
    let mut got = texts.clone();
    got.sort_by_key(Value::to_string);
    expected.sort_by_key(Value::to_string);
    assert_eq!(got, expected);
    // No token in any message or header.
    for hook in receiver.hooks() {
        assert!(!shows_token(&hook.body) && !hook.body.contains(TOKEN));
        assert!(hook.headers.iter().all(|(_, v)| !v.contains(TOKEN)));
    }
    assert!(!daemon.log().contains(SECRET));
    // The outbox is empty once all is delivered, and /metrics says so.
    let left = std::fs::read_dir(world.state_dir().join("outbox")).map_or(0, |d| d.count());
    assert_eq!(left, 0);
    let addr = std::fs::read_to_string(world.state_dir().join("listen-address")).unwrap();
    let metrics = get(&addr, "/metrics");
    for line in [
        "avatar_sync_notifications_total{outcome=\"sent\"} 5",
        "avatar_sync_notifications_total{outcome=\"failed\"} 0",
        "avatar_sync_notifications_total{outcome=\"dropped\"} 0",
        "avatar_sync_notification_outbox_messages 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[test]
fn a_drift_is_told_once_naming_the_git_revision() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    world.instance(A);
    world.write("p.jpg", &photo(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\ndriftInterval: 1s\nnotify:\n  - url: {}\n    events: [drifted, failed]\ninstances:\n  - idInstance: \"{A}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p.jpg\n",
        receiver.url("/hook"),
    ));
    // The manifest and its picture committed: messages name the commit.
    let git = |args: &[&str]| crate::util::git(world.dir.path(), args, None);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "manifest.yaml", "p.jpg"]);
    git(&["commit", "-q", "-m", "pictures"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let daemon = Daemon::start(&world, &["-v"]);
    daemon.wait_for_requests(&world, 1);
    daemon.wait_until("the upload recorded", || {
        world
            .try_state()
            .is_some_and(|s| s["instances"][A]["applied"].is_object())
    });
    let uploaded = world.fake.requests()[0].file.clone();
    world.fake.set_live_picture(A, &photo(50));
    let told = receiver.wait_for(&daemon, "/hook", 1);
    // Looks go on every second, each seeing the drift: still one message.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.delivered("/hook").len(), 1);
    let sha = sha256(&uploaded);
    let body = fixed_part(&told[0]);
    let why = body["detail"].as_str().unwrap().to_owned();
    assert!(why.contains("another picture"), "{why}");
    assert_eq!(
        body,
        json!({
            "version": 1,
            "event": "drifted",
            "instance": A,
            "revision": commit,
            "picture": "p.jpg",
            "desiredSha256": sha,
            "appliedSha256": sha,
            "outcome": "drifted",
            "consecutive": null,
            "detail": why,
            "text": format!("avatar-sync: instance {A} drifted: {why} (it should show picture {})", &sha[..12]),
        })
    );
    assert_eq!(world.fake.requests().len(), 1, "drift: warn sends nothing");
}

/// `GET path` over HTTP/1.1: the body.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(GENEROUS)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[test]
fn a_reconcile_run_tells_before_it_exits_and_leaves_what_failed_in_the_outbox() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    world.instance(A);
    world.write("a.jpg", &jpeg(1));
    let refused = || fake_green_api::Answer::Status(400, "File is empty".to_owned());
    world.fake.script(A, [refused(), refused()]);
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\nnotify:\n  - url: {}\ninstances:\n  - idInstance: \"{A}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
        receiver.url("/hook"),
    ));
    let run = world.run(&["--reconcile", "-v"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        receiver.delivered("/hook").len(),
        1,
        "told before it exits: {run:?}"
    );

    // The receiver fails: the run does not wait out a backoff; the message waits.
    receiver.set(Mode::Answer(500));
    world.write("a.jpg", &jpeg(2));
    let started = std::time::Instant::now();
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let outbox = world.state_dir().join("outbox");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);

    // The next run (nothing to upload) delivers it.
    receiver.set(Mode::Answer(200));
    world.run(&["--reconcile"]);
    let delivered = receiver.delivered("/hook");
    assert_eq!(delivered.len(), 2, "{:?}", receiver.hooks());
    assert_ne!(
        delivered[0].json()["desiredSha256"],
        delivered[1].json()["desiredSha256"]
    );
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    assert_eq!(world.fake.requests_for(A).len(), 2);
}

/// Instance [`A`], whose one upload GREEN-API refuses (`400 File is empty`: never sent
/// again), told to the receiver at `url`.
fn one_refused_upload(world: &World, url: &str) {
    world.instance(A);
    world.write("a.jpg", &jpeg(1));
    let refused = fake_green_api::Answer::Status(400, "File is empty".to_owned());
    world.fake.script(A, [refused]);
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\nnotify:\n  - url: {url}\ninstances:\n  - idInstance: \"{A}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    ));
}

#[test]
fn killed_between_writing_and_delivering_a_message_is_delivered_once_after_restart() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    receiver.set(Mode::Hang);
    one_refused_upload(&world, &receiver.url("/hook"));
    let mut daemon = Daemon::start(&world, &["-v"]);
    // The message is written, and its delivery under way (the receiver never answers).
    daemon.wait_until("an attempt the receiver holds", || {
        !receiver.hooks().is_empty()
    });
    let outbox = world.state_dir().join("outbox");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
    daemon.kill();

    receiver.set(Mode::Answer(204));
    let daemon = Daemon::start(&world, &["-v"]);
    let delivered = receiver.wait_for(&daemon, "/hook", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.delivered("/hook").len(), 1, "once");
    assert_eq!(delivered[0].json()["event"], "failed");
    assert_eq!(delivered[0].json()["outcome"], "refused-bytes");
    // The same message: the one held by the killed process, with its id.
    assert_eq!(delivered[0].body, receiver.hooks()[0].body);
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    assert_eq!(
        world.fake.requests_for(A).len(),
        1,
        "refused bytes are not sent again"
    );
}

#[test]
fn killed_before_a_message_reached_its_receiver_it_is_delivered_once_after_restart() {
    // A port nothing listens on yet: the message is written, every attempt is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let world = World::new(Duration::from_secs(1));
    one_refused_upload(&world, &format!("http://127.0.0.1:{port}/hook"));
    let mut daemon = Daemon::start(&world, &["-v"]);
    let outbox = world.state_dir().join("outbox");
    daemon.wait_until("the message in the outbox", || {
        std::fs::read_dir(&outbox).is_ok_and(|d| d.count() == 1)
    });
    daemon.wait_for_log("notifications: a receiver");
    daemon.kill();

    let receiver = Receiver::start_on(port);
    let daemon = Daemon::start(&world, &["-v"]);
    let delivered = receiver.wait_for(&daemon, "/hook", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.hooks().len(),
        1,
        "sent once, never before the restart"
    );
    assert_eq!(delivered[0].json()["event"], "failed");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
}

#[test]
fn a_redirect_is_not_followed_and_the_message_waits() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    receiver.set(Mode::Answer(307)); // with `Location: /elsewhere`
    one_refused_upload(&world, &receiver.url("/hook"));
    let daemon = Daemon::start(&world, &["-v"]);
    // Tried again (1 s, then 2 s later), never at the redirect's target.
    daemon.wait_until("a second attempt", || receiver.hooks().len() >= 2);
    let hooks = receiver.hooks();
    assert!(hooks.iter().all(|h| h.path == "/hook"), "{hooks:?}");
    assert_eq!(hooks[0].body, hooks[1].body);
    let outbox = world.state_dir().join("outbox");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
    daemon.wait_for_log("answered HTTP 307");
}

#[test]
fn a_halted_rollout_is_one_message_naming_its_failures_and_each_wave_one_digest() {
    let world = World::new(Duration::from_secs(1));
    let receiver = Receiver::start();
    let ids: Vec<String> = (1..=20).map(|n| format!("{}", 1_101_000_000 + n)).collect();
    let mut yaml = format!(
        "apiUrl: {{url}}\nminInterval: 1s\nrollout:\n  waves: [2, 100%]\n  verify: true\n\
         notify:\n  - url: {}\n    events: [halted, rollout]\ninstances:\n",
        receiver.url("/hook")
    );
    for (n, id) in ids.iter().enumerate() {
        world.instance(id);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
        ));
        if n < 2 {
            yaml.push_str("    canary: true\n");
            // WhatsApp shows another picture than the one uploaded.
            world.fake.show_instead(id, &jpeg(99));
        }
    }
    world.write("a.jpg", &photo(1));
    world.write_manifest(&yaml);
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 1, "{run:?}");
    let delivered = receiver.delivered("/hook");
    assert_eq!(
        delivered.len(),
        1,
        "one message for the halt: {delivered:?}"
    );
    let halt = delivered[0].json();
    assert_eq!(halt["event"], "halted");
    assert_eq!(halt["outcome"], "halted");
    assert_eq!(halt["instance"], Value::Null);
    assert_eq!(
        (
            halt["rollout"]["wave"].as_u64(),
            halt["rollout"]["waves"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(halt["rollout"]["failed"], 2);
    let named: Vec<&str> = (halt["rollout"]["failures"].as_array().unwrap().iter())
        .map(|f| f["instance"].as_str().unwrap())
        .collect();
    assert!(
        named.contains(&ids[0].as_str()) && named.contains(&ids[1].as_str()),
        "{halt}"
    );
    assert!(!delivered[0].body.contains(TOKEN));

    // Another run holds and tells nothing new; the resumed run's last wave is one digest.
    assert_eq!(world.run(&["--reconcile"]).code, 1);
    assert_eq!(receiver.delivered("/hook").len(), 1);
    let resumed = world.run(&["--reconcile", "--resume"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(world.fake.request_count(), 20);
    let delivered = receiver.delivered("/hook");
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    let wave = delivered[1].json();
    assert_eq!(wave["event"], "rollout");
    assert_eq!(wave["outcome"], "landed");
    assert_eq!(
        (
            wave["rollout"]["wave"].as_u64(),
            wave["rollout"]["instances"].as_u64()
        ),
        (Some(2), Some(18))
    );
    assert!(
        wave["text"]
            .as_str()
            .unwrap()
            .contains("the rollout is done"),
        "{wave}"
    );
}
