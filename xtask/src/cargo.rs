//! Where cargo puts things: the workspace root, the target directory, the `matrix`
//! binary.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest dir has a parent")
}

/// The cargo executable: the one that runs us when there is one, so the toolchain
/// stays the same.
pub fn cargo() -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// The workspace's target directory, as cargo sees it (CARGO_TARGET_DIR,
/// `build.target-dir` in config files), falling back to `<root>/target` when cargo
/// cannot be asked.
pub fn target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let asked = cargo()
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v["target_directory"].as_str().map(PathBuf::from));
        asked.unwrap_or_else(|| workspace_root().join("target"))
    })
}

/// The `matrix` binary the testbed runs: `$MATRIX_BIN`, else the debug build.
pub fn matrix_bin() -> PathBuf {
    match env::var_os("MATRIX_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => debug_matrix_bin(),
    }
}

/// Where `cargo build -p matrix-user` puts the binary.
pub fn debug_matrix_bin() -> PathBuf {
    target_dir().join("debug").join("matrix")
}
