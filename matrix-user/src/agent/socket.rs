//! The agent's control socket: one JSON request per connection, one JSON answer
//! ([`protocol`](super::protocol)). `matrix set/get/routes/neighbors` talk to it; when no
//! agent runs, clients fall back to the pinned maps.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

use super::protocol::{Answer, ControlError, Query};

/// Directory of the agents' control sockets.
pub const SOCKET_DIR: &str = "/run/matrix";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(SOCKET_DIR).join(format!("{name}.sock"))
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no agent answers on {} (is `matrix agent` running?)", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the answer from {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unreadable answer from the agent: {answer:?}")]
    Unreadable {
        answer: String,
        #[source]
        source: serde_json::Error,
    },
    /// The agent answered, with a refusal.
    #[error(transparent)]
    Refused(#[from] ControlError),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// Whether an agent answers on `name`'s socket.
pub fn agent_running(name: &str) -> bool {
    UnixStream::connect(path(name)).is_ok()
}

/// Sends one request to the agent of node `name` and returns its reply.
pub fn request<Q: Query>(name: &str, query: Q) -> Result<Q::Reply, RequestError> {
    let p = path(name);
    let mut stream = UnixStream::connect(&p).map_err(|source| RequestError::Connect {
        path: p.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(&query.into_request())?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|source| RequestError::Read { path: p, source })?;
    let answer: Answer<Q::Reply> = serde_json::from_str(&answer)
        .map_err(|source| RequestError::Unreadable { answer, source })?;
    Ok(Result::from(answer)?)
}
