//! Notifications: telling people, once, what happened to their fleet (section 13 of the
//! contract). The engine hands typed [`Event`]s to a [`Notices`] handle, which never waits:
//! a full channel drops the event (counted), so a slow or dead receiver can never hold an
//! upload back. The notifier task ([`sender`]) decides what each receiver is told
//! ([`teller`]: keys, not text; `after` failures in a row; a recovery once), writes each
//! message to the outbox in the state directory before sending it
//! ([`crate::state::Outbox`]), and sends with backoff until a 2xx.
//!
//! - [`event`]: what the engine emits;
//! - [`teller`]: who is told what (pure);
//! - [`body`]: the versioned JSON body and Slack's text;
//! - [`post`]: one HTTP POST, signed with HMAC-SHA256 when the receiver has a secret;
//! - [`sender`]: the task: outbox, order, backoff, metrics.

pub(crate) mod body;
pub(crate) mod event;
pub(crate) mod post;
pub(crate) mod sender;
pub(crate) mod teller;

pub(crate) use event::{Event, EventKind, RolloutNews, Subject};
pub(crate) use post::HttpPost;
pub(crate) use sender::{Notices, finish, spawn};

#[cfg(test)]
mod tests;
