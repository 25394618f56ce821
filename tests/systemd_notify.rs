//! systemd `Type=notify`: the real daemon talking to a notify socket this test owns.

use crate::util::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The service manager's side: a datagram socket in the world, and every message read.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    /// Every datagram received so far, in order.
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(world: &World) -> Self {
        let path = world.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// The next datagram, if one comes before `deadline`.
    fn recv_until(&mut self, deadline: Instant) -> Option<String> {
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(message.clone());
                    return Some(message);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
        None
    }

    /// Reads until a datagram satisfies `wanted`; returns it. Panics after [`GENEROUS`].
    fn expect(
        &mut self,
        what: &str,
        daemon: &Daemon,
        wanted: impl Fn(&Message) -> bool,
    ) -> Message {
        let deadline = Instant::now() + GENEROUS;
        loop {
            match self.recv_until(deadline) {
                Some(text) => {
                    let message = Message::parse(&text);
                    if wanted(&message) {
                        return message;
                    }
                }
                None => panic!(
                    "no {what} from the daemon; messages so far: {:#?}\n--- daemon log\n{}",
                    self.seen,
                    daemon.log()
                ),
            }
        }
    }

    /// Every datagram that arrives within `window`.
    fn collect_for(&mut self, window: Duration) -> Vec<Message> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(text) = self.recv_until(deadline) {
            out.push(Message::parse(&text));
        }
        out
    }

    /// Reads every datagram still queued, without waiting: once the daemon has exited,
    /// the rest of what it ever sent.
    fn drain(&mut self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => (self.seen).push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
    }
}

/// One datagram: `KEY=VALUE` lines.
#[derive(Debug)]
struct Message(Vec<(String, String)>);

impl Message {
    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|line| {
                    let (key, value) = line
                        .split_once('=')
                        .unwrap_or_else(|| panic!("not KEY=VALUE: {line:?} in {text:?}"));
                    (key.to_owned(), value.to_owned())
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }
}

/// The daemon with `NOTIFY_SOCKET` pointing at `notify`, and `env` besides.
fn start(world: &World, notify: &NotifySocket, env: &[(&str, &str)]) -> Daemon {
    let mut cmd = world.command(&[]);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    for (key, value) in env {
        cmd.env(key, value);
    }
    Daemon::spawn(world, cmd, "daemon")
}

fn three_instances(world: &World) {
    let mut yaml = "apiUrl: {url}\nminInterval: 1s\ninstances:\n".to_owned();
    for n in 1..=3 {
        let id = format!("110100000{n}");
        world.instance(&id);
        world.write(&format!("pictures/p{n}.jpg"), &jpeg(n));
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/p{n}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
}

#[test]
fn ready_status_reloading_ready_stopping_in_that_order() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world);
    let mut notify = NotifySocket::bind(&world);
    let mut daemon = start(&world, &notify, &[]);

    // READY=1 is the very first message.
    let first = notify.expect("first message", &daemon, |_| true);
    assert!(first.has("READY", "1"), "first message {first:?}");
    let status = notify.expect("STATUS=", &daemon, |m| m.get("STATUS").is_some());
    assert!(
        status.get("STATUS").unwrap().contains("in sync"),
        "{status:?}"
    );
    // Once the first pass has landed, the status line says so.
    let requests = world.fake.wait_for_requests(3, GENEROUS);
    assert_eq!(requests.len(), 3, "{}", daemon.log());
    notify.expect("STATUS= with all three in sync", &daemon, |m| {
        m.get("STATUS")
            .is_some_and(|s| s.starts_with("3 in sync, 0 pending, 0 failed"))
    });

    daemon.signal("HUP");
    let reloading = notify.expect("RELOADING=1", &daemon, |m| m.has("RELOADING", "1"));
    let usec = reloading
        .get("MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    let usec: u64 = usec
        .parse()
        .unwrap_or_else(|e| panic!("MONOTONIC_USEC={usec}: {e}"));
    assert!(usec > 0);
    notify.expect("READY=1 after the reload", &daemon, |m| m.has("READY", "1"));

    daemon.signal("TERM");
    notify.expect("STOPPING=1", &daemon, |m| m.has("STOPPING", "1"));
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());

    // Nothing out of order: exactly two READY=1, the reload between them, STOPPING last
    // of the lifecycle messages; no STOPPING before SIGTERM.
    let lifecycle: Vec<&str> = notify
        .seen
        .iter()
        .flat_map(|text| text.lines())
        .filter(|line| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(line))
        .collect();
    assert_eq!(
        lifecycle,
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
        "{:#?}",
        notify.seen
    );
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn watchdog_pings_arrive_repeatedly_when_watchdog_usec_asks() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world);
    let mut notify = NotifySocket::bind(&world);
    // WATCHDOG_PID unset: sd_notify::watchdog_enabled accepts that (the pid cannot be known
    // before the spawn).
    let mut daemon = start(&world, &notify, &[("WATCHDOG_USEC", "200000")]);
    notify.expect("READY=1", &daemon, |m| m.has("READY", "1"));
    daemon.wait_for_requests(&world, 3);

    // Asked for every 200 ms (pinged about every 100 ms): over 3 s, many pings, idle or not.
    let messages = notify.collect_for(Duration::from_secs(3));
    let pings = messages.iter().filter(|m| m.has("WATCHDOG", "1")).count();
    assert!(
        pings >= 5,
        "only {pings} WATCHDOG=1 in 3 s with WATCHDOG_USEC=200000: {messages:#?}\n{}",
        daemon.log()
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world);
    let mut notify = NotifySocket::bind(&world);
    let mut daemon = start(&world, &notify, &[]);
    // Not a window waited out: the daemon's whole life (its first pass, a reload, the
    // stop), read from what it sent. Once it has exited, all of that is in the socket.
    notify.expect("READY=1", &daemon, |m| m.has("READY", "1"));
    daemon.wait_for_requests(&world, 3);
    notify.expect("STATUS= with all three in sync", &daemon, |m| {
        m.get("STATUS")
            .is_some_and(|s| s.starts_with("3 in sync, 0 pending, 0 failed"))
    });
    daemon.signal("HUP");
    notify.expect("READY=1 after the reload", &daemon, |m| m.has("READY", "1"));
    daemon.signal("TERM");
    notify.expect("STOPPING=1", &daemon, |m| m.has("STOPPING", "1"));
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());
    notify.drain();
    let messages: Vec<Message> = notify.seen.iter().map(|t| Message::parse(t)).collect();
    assert!(
        messages.iter().all(|m| m.get("WATCHDOG").is_none()),
        "{messages:#?}"
    );
}
