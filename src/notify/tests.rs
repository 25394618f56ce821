//! The teller's decisions: keys, not text; `after` failures in a row; a recovery once;
//! nothing told again after a restart. `reconcile/notify_tests.rs` runs the engine with a
//! notifier on tokio's paused clock; `tests/notify.rs` the real binary against a real
//! receiver.

use super::teller::Told;
use super::*;
use crate::manifest::{self, InstanceId, Receiver, WebhookUrl};
use crate::picture::Digest;
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
    Subject {
        id: InstanceId::parse(id).unwrap(),
        desired: Digest::of(picture),
        applied: None,
        picture: Some("a.jpg".to_owned()),
    }
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
