//! One agent per node: a lock file beside the control socket, held for the agent's life.
//! The kernel releases the lock when the process ends, however it ends, so a SIGKILLed
//! agent never blocks its successor.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, Write as _},
    path::PathBuf,
};

use super::socket::SOCKET_DIR;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another matrix agent runs for node `{name}` (pid {pid}, lock {path}): stop it first, \
         or give this one another `name` in its config"
    )]
    Held {
        name: String,
        pid: String,
        path: PathBuf,
    },
    #[error("cannot use the agent lock file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of node `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(SOCKET_DIR).join(format!("{name}.lock"))
}

/// Held while it lives.
#[derive(Debug)]
pub struct AgentLock {
    _file: File,
}

/// Takes node `name`'s lock and writes this process's pid into it.
pub fn acquire(name: &str) -> Result<AgentLock, LockError> {
    let path = path(name);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(SOCKET_DIR).map_err(io)?;
    // Not truncated before the lock is ours: the holder's pid stays readable.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                name: name.to_string(),
                pid: pid.trim().to_string(),
                path,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(AgentLock { _file: file })
}

/// Whether an agent holds node `name`'s lock now.
pub fn held(name: &str) -> bool {
    match File::open(path(name)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let name = format!("locktest-{}", std::process::id());
        let first = acquire(&name).unwrap();
        assert!(held(&name));
        let e = acquire(&name).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "runs for node `{name}` (pid {}",
                std::process::id()
            )),
            "{e}"
        );
        drop(first);
        assert!(!held(&name));
        let again = acquire(&name).unwrap();
        drop(again);
        std::fs::remove_file(path(&name)).unwrap();
    }
}
