//! Hot reload of the account map: a file watch (debounced, on the map's
//! folder so editors' rename-over-the-file saves are seen) and SIGHUP both
//! trigger a reload. A valid map takes effect atomically; an invalid one is
//! rejected whole, logged with FILE:LINE and shown on the ops page, and the
//! previous map stays in force.

use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebounceEventResult};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::{Accounts, Reloaded};
use crate::oauth::TokenBroker;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    FileChange,
    Sighup,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChange => "file change",
            Trigger::Sighup => "SIGHUP",
        }
    }
}

/// Start watching; runs on the current runtime until the process ends.
pub fn spawn(accounts: Arc<Accounts>, broker: TokenBroker, file: std::path::PathBuf) {
    let (tx, mut rx) = mpsc::channel::<Trigger>(1);

    // The watcher lives on its own thread (notify's), feeding the channel; a full channel
    // means a reload is already pending, which will read the newest file anyway.
    let dir = file
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let name = file.file_name().map(|n| n.to_os_string());
    let watch_tx = tx.clone();
    let debouncer = new_debouncer(
        Duration::from_millis(250),
        move |res: DebounceEventResult| {
            if let Ok(events) = res {
                if events
                    .iter()
                    .any(|e| e.path.file_name().map(|n| n.to_os_string()) == name)
                {
                    let _ = watch_tx.try_send(Trigger::FileChange);
                }
            }
        },
    );
    match debouncer {
        Ok(mut d) => match d.watcher().watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                // Keep the debouncer alive for the life of the process.
                std::mem::forget(d);
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch the account map; reload with SIGHUP")
            }
        },
        Err(e) => warn!(error = %e, "cannot start the file watcher; reload with SIGHUP"),
    }

    tokio::spawn(async move {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                while hup.recv().await.is_some() {
                    let _ = tx.try_send(Trigger::Sighup);
                }
            }
            Err(e) => warn!(error = %e, "cannot listen for SIGHUP"),
        }
    });

    tokio::spawn(async move {
        while let Some(trigger) = rx.recv().await {
            let why = trigger.as_str();
            let force = trigger == Trigger::Sighup;
            match accounts.reload(force).await {
                Ok(Reloaded::Applied { removed }) => {
                    for name in &removed {
                        broker.forget(name);
                    }
                    info!(trigger = why, accounts = accounts.snapshot().len(), removed = ?removed, "account map reloaded");
                }
                Ok(Reloaded::Unchanged) => {
                    debug!(
                        trigger = why,
                        "account map text unchanged; nothing to reload"
                    )
                }
                Err(e) => {
                    error!(
                        trigger = why,
                        "account map change rejected; the previous map stays in force:\n{e}"
                    );
                }
            }
        }
    });
}
