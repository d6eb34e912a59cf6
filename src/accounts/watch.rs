//! Hot reload of the account map: a file watch (debounced, on the map's
//! folder so editors' rename-over-the-file saves and a Kubernetes ConfigMap's
//! relinking are seen) and SIGHUP both trigger a reload. A valid map takes
//! effect atomically; an invalid one is rejected whole, logged with FILE:LINE
//! and shown on the ops page, and the previous map stays in force.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
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

/// The names in the map's folder whose change can change what the map's path reads: the
/// map's own, and where the map is a symlink into its folder, the first step of the link.
/// A Kubernetes ConfigMap volume is laid out so (`accounts.toml -> ..data/accounts.toml`,
/// `..data -> ..2026_12_05_…`) and updated by renaming a new `..data` over the old one: no
/// event ever names `accounts.toml`. Read again on every batch, as an update may relink.
fn names_that_change(map: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = map
        .file_name()
        .map(OsStr::to_os_string)
        .into_iter()
        .collect();
    // Only a relative link starts in the watched folder; an absolute one (or one that climbs
    // out with `..`) points wherever the operator chose, and edits there are signalled with
    // SIGHUP.
    if let Ok(target) = std::fs::read_link(map) {
        if let Some(Component::Normal(first)) = target.components().next() {
            names.push(first.to_os_string());
        }
    }
    names
}

/// Start watching; runs on the current runtime until the process ends.
pub fn spawn(accounts: Arc<Accounts>, broker: TokenBroker, file: PathBuf) {
    let (tx, mut rx) = mpsc::channel::<Trigger>(1);

    // The watcher lives on its own thread (notify's), feeding the channel; a full channel
    // means a reload is already pending, which will read the newest file anyway.
    let dir = file
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let watch_tx = tx.clone();
    let debouncer = new_debouncer(
        Duration::from_millis(250),
        move |res: DebounceEventResult| {
            if let Ok(events) = res {
                let names = names_that_change(&file);
                if events.iter().any(|e| {
                    e.path
                        .file_name()
                        .is_some_and(|n| names.iter().any(|m| m == n))
                }) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(map: &Path) -> Vec<String> {
        names_that_change(map)
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_link_into_the_folder_adds_its_first_step_and_no_other_link_does() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("plain.toml"), "").unwrap();
        symlink("..data/accounts.toml", at("configmap.toml")).unwrap();
        symlink("shared.toml", at("sibling.toml")).unwrap();
        symlink("/etc/upsbridge/accounts.toml", at("absolute.toml")).unwrap();
        symlink("../elsewhere/accounts.toml", at("climbing.toml")).unwrap();

        assert_eq!(names(&at("plain.toml")), ["plain.toml"]);
        assert_eq!(names(&at("configmap.toml")), ["configmap.toml", "..data"]);
        assert_eq!(names(&at("sibling.toml")), ["sibling.toml", "shared.toml"]);
        assert_eq!(names(&at("absolute.toml")), ["absolute.toml"]);
        assert_eq!(names(&at("climbing.toml")), ["climbing.toml"]);
        assert_eq!(names(&at("missing.toml")), ["missing.toml"]);
    }
}
