//! The agent's control socket: one JSON request per connection, one JSON answer.
//! `matrix set/get/routes/neighbors` talk to it; when no agent runs, clients fall back to
//! the pinned maps.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Directory of the agents' control sockets.
pub const SOCKET_DIR: &str = "/run/matrix";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(SOCKET_DIR).join(format!("{name}.sock"))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Get,
    Set { name: String, value: String },
    Routes,
    Neighbors,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl Response {
    pub fn ok(data: Value) -> Self {
        Self {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(e: impl ToString) -> Self {
        Self {
            ok: false,
            error: Some(e.to_string()),
            data: Value::Null,
        }
    }
}

/// Whether an agent answers on `name`'s socket.
pub fn agent_running(name: &str) -> bool {
    UnixStream::connect(path(name)).is_ok()
}

/// Sends one request to the agent of node `name` and returns its data.
pub fn request(name: &str, req: &Request) -> anyhow::Result<Value> {
    let p = path(name);
    let mut stream = UnixStream::connect(&p).with_context(|| {
        format!(
            "no agent answers on {} (is `matrix agent` running?)",
            p.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .with_context(|| format!("reading the answer from {}", p.display()))?;
    let resp: Response = serde_json::from_str(&answer)
        .with_context(|| format!("unreadable answer from the agent: {answer:?}"))?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "agent refused".into()));
    }
    Ok(resp.data)
}
