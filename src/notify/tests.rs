//! The teller's decisions: keys, not text; `after` failures in a row; a recovery once;
//! nothing told again after a restart. `reconcile/notify_tests.rs` runs the engine with a
//! notifier on tokio's paused clock; `tests/notify.rs` the real binary against a real
//! receiver.

use super::teller::Told;
use super::*;
use crate::manifest::{self, InstanceId, Receiver, WebhookUrl};
use std::time::SystemTime;

fn receiver(after: u32, events: &[&str]) -> Receiver {
    Receiver {
        url: WebhookUrl::parse("http://127.0.0.1:1/hook").unwrap(),
        format: manifest::NotifyFormat::Json,
        secret_file: None,
        events: (events.iter())
            .map(|e| manifest::EventName::parse(e).unwrap())
            .collect(),
        after,
        line: 1,
    }
}

fn subject(id: &str, picture: &[u8]) -> Subject {
    Subject::in_test(id, picture)
}

fn failed(subject: &Subject, consecutive: u32, detail: &str) -> Event {
    Event {
        at: SystemTime::UNIX_EPOCH,
        kind: EventKind::Failed {
            subject: subject.clone(),
            outcome: "server-error",
            detail: detail.to_owned(),
            consecutive,
        },
    }
}

fn recovered(subject: &Subject, failures: u32) -> Event {
    Event {
        at: SystemTime::UNIX_EPOCH,
        kind: EventKind::Recovered {
            subject: subject.clone(),
            failures,
        },
    }
}

#[test]
fn a_failure_is_told_after_n_in_a_row_once_whatever_its_text_and_its_recovery_once() {
    let receivers = [receiver(3, &["failed"]), receiver(1, &["drifted"])];
    let mut told = Told::new();
    let a = subject("1101000001", b"a");
    // The detail changes every time (as a server's error text does): keys, not text.
    assert!(
        told.tell(&receivers, &failed(&a, 1, "HTTP 500 at 10:00:01"))
            .is_empty()
    );
    assert!(
        told.tell(&receivers, &failed(&a, 2, "HTTP 502 at 10:00:11"))
            .is_empty()
    );
    let third = told.tell(&receivers, &failed(&a, 3, "HTTP 500 at 10:00:31"));
    assert_eq!(third.len(), 1);
    assert_eq!((third[0].receiver, third[0].event), (0, "failed"));
    for n in 4..20 {
        assert!(
            told.tell(&receivers, &failed(&a, n, &format!("try {n}")))
                .is_empty()
        );
    }
    // A restart: the record is read back, nothing is told again.
    let mut told = Told::from_json(&told.to_json()).unwrap();
    assert!(told.tell(&receivers, &failed(&a, 21, "again")).is_empty());
    let back = told.tell(&receivers, &recovered(&a, 21));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event, "recovered");
    assert!(told.tell(&receivers, &recovered(&a, 21)).is_empty());
    // A failure under `after` ends untold, and so does its recovery.
    let b = subject("1101000002", b"b");
    told.tell(&receivers, &failed(&b, 1, "once"));
    assert!(told.tell(&receivers, &recovered(&b, 1)).is_empty());
    // Another picture failing is another key.
    let a2 = subject("1101000001", b"a2");
    assert!(told.tell(&receivers, &failed(&a2, 2, "x")).is_empty());
    assert_eq!(told.tell(&receivers, &failed(&a2, 3, "x")).len(), 1);
}

fn rollout_news(wave: usize, failed: usize) -> RolloutNews {
    RolloutNews {
        revision: "3c1f0a9e2b7d".repeat(5) + "abcd",
        wave,
        waves: 3,
        instances: 2,
        failed,
        failures: (0..failed)
            .map(|n| {
                let id = InstanceId::parse(&format!("110100000{n}")).unwrap();
                (id, format!("read back: another picture is live ({n})"))
            })
            .collect(),
        next_wave_at: None,
    }
}

#[test]
fn a_halt_is_one_message_and_each_wave_one_digest_whatever_is_told_again() {
    let receivers = [
        receiver(1, &["halted", "rollout"]),
        receiver(1, &["failed"]),
    ];
    let mut told = Told::new();
    let event = |kind| Event {
        at: SystemTime::UNIX_EPOCH,
        kind,
    };
    let wave1 = told.tell(&receivers, &event(EventKind::Wave(rollout_news(1, 0))));
    assert_eq!(wave1.len(), 1);
    assert_eq!((wave1[0].receiver, wave1[0].event), (0, "rollout"));
    assert!(wave1[0].instance.starts_with("rollout 3c1f0a9e2b7d"));
    assert!(
        told.tell(&receivers, &event(EventKind::Wave(rollout_news(1, 0))))
            .is_empty()
    );
    let halted = told.tell(&receivers, &event(EventKind::Halted(rollout_news(2, 1))));
    assert_eq!(halted.len(), 1);
    assert_eq!(halted[0].event, "halted");
    // The same halt told again with more failures found: still one message, and after a
    // restart too.
    let mut told = Told::from_json(&told.to_json()).unwrap();
    assert!(
        told.tell(&receivers, &event(EventKind::Halted(rollout_news(2, 2))))
            .is_empty()
    );
    let body = body::json_body(
        "id",
        &event(EventKind::Halted(rollout_news(2, 2))),
        Some("3f2a"),
    );
    assert_eq!(body["event"], "halted");
    assert_eq!(body["instance"], serde_json::Value::Null);
    assert_eq!(body["rollout"]["wave"], 2);
    assert_eq!(body["rollout"]["failures"][1]["instance"], "1101000001");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("HALTED at wave 2 of 3"),
        "{body}"
    );
}
