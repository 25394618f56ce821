//! Signals as loop events: SIGHUP is [`Event::Reload`], SIGUSR1 is [`Event::Resume`],
//! SIGTERM and SIGINT are [`Event::Stop`].

use super::Event;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;

/// Starts forwarding signals to `events` for as long as the loop listens. Fails only when
/// the process cannot listen for signals at all.
pub(crate) fn forward(events: UnboundedSender<Event>) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                Some(()) = hangup.recv() => Event::Reload,
                Some(()) = user1.recv() => Event::Resume,
                Some(()) = terminate.recv() => Event::Stop,
                Some(()) = interrupt.recv() => Event::Stop,
                else => return,
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    Ok(())
}
