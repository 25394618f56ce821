//! Daemon mode: the real binary running against the GREEN-API fake, reacting to files.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A daemon child process that is killed if the test panics.
struct Daemon {
    child: Child,
    stderr_path: std::path::PathBuf,
}

impl Daemon {
    fn start(world: &World) -> Self {
        let stderr_path = world.path("daemon.log");
        let log = std::fs::File::create(&stderr_path).unwrap();
        let child = world
            .command(&[])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, stderr_path }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop(mut self) -> i32 {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const GENEROUS: Duration = Duration::from_secs(30);

fn three_instances(world: &World, min_interval: &str) {
    let mut yaml = format!("apiUrl: {{url}}\nminInterval: {min_interval}\ninstances:\n");
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
fn applies_everything_then_stays_idle_then_reacts_to_an_edit() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world, "1s");
    let daemon = Daemon::start(&world);
    let requests = world.fake.wait_for_requests(3, GENEROUS);
    assert_eq!(requests.len(), 3, "{}", daemon.log());
    // Idle: no further call over several seconds.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.fake.request_count(), 3, "{}", daemon.log());

    world.write("pictures/p2.jpg", &jpeg(20));
    let requests = world.fake.wait_for_requests(4, GENEROUS);
    assert_eq!(requests.len(), 4, "{}", daemon.log());
    assert_eq!(requests[3].instance, "1101000002");
    assert_eq!(requests[3].file, jpeg(20));

    assert_eq!(daemon.stop(), 0);
    let state = world.state();
    assert_eq!(
        state["instances"]["1101000002"]["applied"]["sha256"],
        sha256(&jpeg(20))
    );
}
