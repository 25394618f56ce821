//! The sandbox binary as a user runs it: it prints its URL and a manifest, then one line
//! per request as it arrives, and never a token after the banner.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fake-green-api");
const JPG: &[u8] = include_bytes!("../../examples/pictures/support.jpg");
const TOKEN: &str = "sandboxToken0123456789";
const BOUNDARY: &str = "----sandbox-test-boundary";

/// The running sandbox, killed when dropped; its stdout, line by line, on a channel.
struct Sandbox {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sandbox {
    fn start(args: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Sandbox { child, lines }
    }

    /// The lines up to and including the first one `wanted` accepts.
    fn until(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    let done = wanted(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("{e}; printed so far: {seen:#?}"),
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts `file` as `setProfilePicture` of `id` with `token`; the status line.
fn upload(addr: &str, id: &str, token: &str, file: &[u8]) -> String {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let mut request = format!(
        "POST /waInstance{id}/setProfilePicture/{token} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&request).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_sandbox_prints_a_manifest_then_each_request_without_its_token() {
    let sandbox = Sandbox::start(&[
        "--port",
        "0",
        "--instance",
        &format!("1101000001:{TOKEN}"),
        "--instance=1101000002:other",
    ]);
    let banner = sandbox.until(|line| line.starts_with("time "));
    let url = (banner[0].split_whitespace())
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{banner:#?}"))
        .to_owned();
    let text = banner.join("\n");
    assert!(text.contains(&format!("apiUrl: {url}")), "{text}");
    assert!(text.contains("idInstance: \"1101000002\""), "{text}");
    assert!(text.contains("apiTokenEnv: SANDBOX_TOKEN_1"), "{text}");
    assert!(
        text.contains(&format!("export SANDBOX_TOKEN_1='{TOKEN}'")),
        "{text}"
    );

    let addr = url.trim_start_matches("http://");
    assert!(upload(addr, "1101000001", TOKEN, JPG).contains(" 200 "));
    let line = sandbox.until(|line| line.contains("setProfilePicture"));
    let line = line.last().unwrap();
    let columns: Vec<&str> = line.split_whitespace().collect();
    // HH:MM:SS.mmm request instance size "bytes" answer
    assert_eq!(columns[0].len(), "00:00:00.000".len(), "{line}");
    assert_eq!(
        columns[1..],
        [
            "setProfilePicture",
            "1101000001",
            &JPG.len().to_string(),
            "bytes",
            "applied"
        ],
        "{line}"
    );

    // Another instance's token: a 401, said so, and the token is not printed.
    assert!(upload(addr, "1101000002", TOKEN, JPG).contains(" 401 "));
    let lines = sandbox.until(|line| line.contains("1101000002"));
    let line = lines.last().unwrap();
    assert!(line.ends_with("401 (not this instance's token)"), "{line}");
    assert!(!lines.iter().any(|l| l.contains(TOKEN)), "{lines:#?}");
}

#[test]
fn a_command_line_without_instances_is_a_usage_error() {
    let run = Command::new(BIN).output().unwrap();
    assert_eq!(run.status.code(), Some(64), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--instance ID:TOKEN"), "{stderr}");
    let run = Command::new(BIN)
        .args(["--instance", "1101000001"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(64), "{run:?}");
    // A token avatar-sync would refuse (the README once said `token-one`).
    let run = Command::new(BIN)
        .args(["--instance", "1101000001:token-one"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(64), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("ASCII letters and digits only"), "{stderr}");
}
