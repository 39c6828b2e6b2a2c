//! Running external commands (`ip`, `cargo`, ...) with errors that say which command
//! failed and what it printed.

use std::{
    ffi::OsStr,
    io,
    process::{Command, ExitStatus, Output, Stdio},
};

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot start `{cmd}`")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("`{cmd}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        cmd: String,
        status: ExitStatus,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The command line as a shell user would type it, for error messages.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with captured output; a non-zero exit is an error that
/// carries its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, CmdError> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(CmdError::Failed {
            cmd: display(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Runs `cmd` with captured output; the exit status is the caller's to judge.
pub fn output(cmd: &mut Command) -> Result<Output, CmdError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            cmd: display(cmd),
            source,
        })
}

/// Runs `cmd` with the terminal's stdio (for long builds whose progress the user
/// should see); a non-zero exit is an error.
pub fn run_inherit(cmd: &mut Command) -> Result<(), CmdError> {
    let status = cmd.status().map_err(|source| CmdError::Spawn {
        cmd: display(cmd),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(CmdError::Failed {
            cmd: display(cmd),
            status,
            stderr: String::new(),
        })
    }
}

/// `ip <args>`, checked.
pub fn ip<I, S>(args: I) -> Result<Output, CmdError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("ip").args(args))
}

/// Whether `program` is on PATH (probed by running it with `arg`, e.g. `--version`).
pub fn available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
