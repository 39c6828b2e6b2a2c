//! Loading, pinning, attaching and tearing down the XDP programs of one node; and
//! loading them without pins or attachment, for BPF_PROG_TEST_RUN.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    programs::{Xdp, XdpMode},
};
use matrix_common::names;

use super::{DataPlaneError, Result, object};

/// The loaded programs of one node; the maps are pinned under `dir`.
pub struct Loaded {
    ebpf: Ebpf,
    dir: PathBuf,
    attached: Vec<(&'static str, String)>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataPlaneError {
    let path = path.to_path_buf();
    move |source| DataPlaneError::Io { op, path, source }
}

/// Loads the object with every map pinned by name under `dir`. Maps already pinned
/// there (a restarted agent) are adopted, not recreated, so their routes survive.
pub fn load(dir: &Path) -> Result<Loaded> {
    let root = dir.parent().unwrap_or(dir);
    if !is_bpffs(root.parent().unwrap_or(root)) {
        return Err(DataPlaneError::Io {
            op: "bpffs is not mounted at",
            path: root.parent().unwrap_or(root).to_path_buf(),
            source: std::io::Error::other(
                "mount it with `mount -t bpf bpf /sys/fs/bpf` or `cargo xtask setup`; \
                 note that `ip netns exec` remounts /sys: start the agent in a namespace \
                 with `nsenter --net=/run/netns/NAME` instead",
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_err("cannot create pin directory", dir))?;
    let mut loader = EbpfLoader::new();
    for name in names::ALL {
        loader.map_pin_path(name, dir.join(name));
    }
    let mut ebpf = loader
        .load(object())
        .map_err(|e| DataPlaneError::Load(Box::new(e)))?;
    for name in [
        matrix_common::programs::UNDERLAY,
        matrix_common::programs::WORKLOAD,
    ] {
        program(&mut ebpf, name)?
            .load()
            .map_err(|e| DataPlaneError::Program {
                name: name.into(),
                op: "load (verifier)".into(),
                source: Box::new(e),
            })?;
    }
    Ok(Loaded {
        ebpf,
        dir: dir.to_path_buf(),
        attached: Vec::new(),
    })
}

fn is_bpffs(path: &Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let mut f = l.split_whitespace();
                let (_, mnt, fs) = (f.next(), f.next(), f.next());
                mnt == path.to_str() && fs == Some("bpf")
            })
        })
        .unwrap_or(false)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| DataPlaneError::Program {
            name: name.into(),
            op: "find in object".into(),
            source: Box::new(aya::programs::ProgramError::NotLoaded),
        })?;
    prog.try_into().map_err(|e| DataPlaneError::Program {
        name: name.into(),
        op: "cast to XDP".into(),
        source: Box::new(e),
    })
}

/// Loads the object with private maps (not pinned: they go with the returned object)
/// and every program in it verified, attaching none: what BPF_PROG_TEST_RUN needs (the
/// packet fixtures, the benches). [`DataPlane::of_loaded`](super::DataPlane::of_loaded)
/// opens its maps.
pub fn load_unattached() -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .load(object())
        .map_err(|e| DataPlaneError::Load(Box::new(e)))?;
    let names: Vec<String> = ebpf.programs().map(|(name, _)| name.to_string()).collect();
    for name in names {
        program(&mut ebpf, &name)?
            .load()
            .map_err(|e| DataPlaneError::Program {
                name: name.clone(),
                op: "load (verifier)".into(),
                source: Box::new(e),
            })?;
    }
    Ok(ebpf)
}

impl Loaded {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Attaches program `name` to `iface`. The kernel picks native (driver) mode where
    /// the driver has it and generic mode elsewhere.
    pub fn attach(&mut self, name: &'static str, iface: &str) -> Result<()> {
        program(&mut self.ebpf, name)?
            .attach(iface, XdpMode::Default)
            .map_err(|e| DataPlaneError::Program {
                name: name.into(),
                op: format!("attach to {iface}"),
                source: Box::new(e),
            })?;
        self.attached.push((name, iface.to_string()));
        Ok(())
    }

    /// `(program, interface)` pairs attached so far.
    pub fn attached(&self) -> &[(&'static str, String)] {
        &self.attached
    }

    /// Detaches every program and removes the pinned maps and their directory.
    pub fn teardown(self) -> Result<()> {
        let Loaded { ebpf, dir, .. } = self;
        // Dropping the object detaches its links and closes the map fds.
        drop(ebpf);
        unpin(&dir)
    }
}

/// Removes the pinned maps of a node (also a stale set left by a killed agent).
pub fn unpin(dir: &Path) -> Result<()> {
    for name in names::ALL {
        let p = dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot unpin", &p)(e)),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot remove pin directory", dir)(e)),
    }
}
