//! Per-host set-up of a real fleet: `matrix config gen` writes every host's agent config
//! from one fleet file (the schema is `matrix_schema::fleet`), `matrix config key` a
//! fresh cluster key.

use std::{
    fs,
    io::{Read as _, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use anyhow::{Context as _, bail};
use matrix_schema::fleet::{Fleet, KEY_LEN};

/// Writes `<name>.toml` for every node of `fleet_path` (only `node` with `--node`) into
/// `out`; with `node` and no `out`, prints that node's config instead. Every config is
/// generated and checked before the first is written, so a bad fleet file writes nothing.
pub fn generate(fleet_path: &Path, out: Option<&Path>, node: Option<&str>) -> anyhow::Result<()> {
    let fleet = Fleet::load(fleet_path)?;
    let origin = fleet_path.display().to_string();
    let chosen: Vec<usize> = match node {
        Some(key) => vec![fleet.find(key)?],
        None => (0..fleet.nodes.len()).collect(),
    };
    let texts = chosen
        .iter()
        .map(|&i| Ok((&fleet.nodes[i].name, fleet.render(i, &origin)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = match (out, node) {
        (None, Some(_)) => {
            print!("{}", texts[0].1);
            return Ok(());
        }
        (Some(dir), _) => dir,
        (None, None) => Path::new("."),
    };
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, text) in texts {
        let path = out.join(format!("{name}.toml"));
        // Through a temporary file and a rename: a config being replaced is never seen
        // half written.
        let tmp = out.join(format!(".{name}.toml.tmp"));
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes a new cluster key of [`KEY_LEN`] random bytes to `out`, readable by its owner
/// only. Never overwrites: a fleet whose nodes hold different keys cannot talk.
pub fn key(out: &Path) -> anyhow::Result<()> {
    let mut key = [0u8; KEY_LEN];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read random bytes from /dev/urandom")?;
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists: a new key would cut the nodes that hold the old one off from those \
             given the new; remove it first if you mean to replace it",
            out.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", out.display())),
    };
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote a {KEY_LEN}-byte cluster key to {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("matrix-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn keys_are_random_private_and_never_overwritten() {
        let dir = scratch("key-test");
        let (a, b) = (dir.join("a.key"), dir.join("b.key"));
        key(&a).unwrap();
        key(&b).unwrap();
        let (ka, kb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert_eq!(ka.len(), KEY_LEN);
        assert_ne!(ka, kb);
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        let e = format!("{:#}", key(&a).unwrap_err());
        assert!(e.contains("a.key exists"), "{e}");
        assert_eq!(fs::read(&a).unwrap(), ka);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gen_writes_one_checked_config_per_node() {
        let dir = scratch("gen-test");
        let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet.toml");
        generate(&fleet, Some(&dir), None).unwrap();
        let mut written: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(
            written,
            ["core-1.toml", "core-2.toml", "edge-1.toml", "edge-2.toml"]
        );
        for name in &written {
            let c = matrix_schema::config::Config::from_file(&dir.join(name)).unwrap();
            assert_eq!(format!("{}.toml", c.name), *name);
        }
        // A bad fleet writes nothing.
        let bad = dir.join("bad.toml");
        let text = fs::read_to_string(&fleet)
            .unwrap()
            .replace("b = \"edge-2:eth0\"", "b = \"edge-2:eth9\"");
        fs::write(&bad, text).unwrap();
        let out = dir.join("out");
        let e = generate(&bad, Some(&out), None).unwrap_err().to_string();
        assert!(e.contains("`link[2].b` = \"edge-2:eth9\""), "{e}");
        assert!(!out.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
