//! avatar-sync's integration tests, one binary (as ripgrep's `tests/tests.rs`): the real
//! `avatar-sync` binary against the GREEN-API fake on 127.0.0.1. Each module is one part
//! of the product; [`util`] is the world they share (a manifest, pictures, a state
//! directory, the fake, a runner for the binary).

mod util;

mod adoption;
mod check;
mod daemon;
mod drift;
mod examples;
mod first_hour;
mod hardening;
mod listen;
mod notify;
mod pictures;
mod plan;
mod reconcile;
mod rollout;
mod safety;
mod schema;
mod scope;
mod sealed;
mod shards;
mod signed;
mod soak;
mod systemd_notify;
mod walkthrough;
