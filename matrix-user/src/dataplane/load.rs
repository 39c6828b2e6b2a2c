//! Loading, pinning, attaching and tearing down the XDP programs of one node; and
//! loading them without pins or attachment, for BPF_PROG_TEST_RUN.
//!
//! The data plane outlives its agent. Maps are pinned under the node's directory, and
//! each program is attached through a bpf_link pinned beside them (`link-<program>-<iface>`),
//! so a killed agent leaves the node forwarding on its last routes. A restarted agent
//! checks that the pinned maps have the layout it was built for, adopts them, and swaps
//! its programs onto the pinned links atomically (`BPF_LINK_UPDATE`): no packet meets an
//! interface without a program. Only a clean stop detaches and unpins.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::MapInfo,
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use matrix_common::{LAYOUT_VERSION, names};

use super::{DataPlane, DataPlaneError, Result, object};

/// Prefix of the pinned links in a node's directory.
const LINK_PIN_PREFIX: &str = "link-";

/// The loaded programs of one node; the maps are pinned under `dir`.
pub struct Loaded {
    ebpf: Ebpf,
    dir: PathBuf,
    adopted: bool,
    links: Vec<AttachedLink>,
}

/// A program attached to an interface through a pinned link.
struct AttachedLink {
    program: &'static str,
    iface: String,
    pin: PathBuf,
    /// Held so a clean stop can detach at once; the pin alone keeps the link alive.
    link: FdLink,
}

/// How [`Loaded::attach`] put a program on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A new link, pinned.
    New,
    /// The program replaced an earlier agent's on its pinned link, atomically.
    Replaced,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataPlaneError {
    let path = path.to_path_buf();
    move |source| DataPlaneError::Io { op, path, source }
}

/// Loads the object with every map pinned by name under `dir`. Maps already pinned
/// there (a restarted agent) are adopted, not recreated, so their routes survive; maps
/// of another layout are refused before anything is touched.
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
    let adopted = check_layout(dir)?;
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
        adopted,
        links: Vec::new(),
    })
}

/// Compares every map pinned under `dir` with this object's definition of it (key and
/// value sizes, entries), and the layout version an earlier agent wrote into CONFIG with
/// [`LAYOUT_VERSION`]. Returns whether there were pinned maps to adopt.
fn check_layout(dir: &Path) -> Result<bool> {
    let obj = aya_obj::Object::parse(object()).map_err(|e| DataPlaneError::Layout {
        dir: dir.to_path_buf(),
        map: "(object)",
        found: format!("an object that does not parse: {e}"),
        expected: "the embedded matrix-ebpf object".into(),
    })?;
    let mut found = false;
    for name in names::ALL {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        found = true;
        let info = MapInfo::from_pin(&path).map_err(|source| DataPlaneError::OpenMap {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let Some(def) = obj.maps.get(name) else {
            continue;
        };
        let have = (info.key_size(), info.value_size(), info.max_entries());
        let want = (def.key_size(), def.value_size(), def.max_entries());
        if have != want {
            let show = |(k, v, n): (u32, u32, u32)| format!("key {k} B, value {v} B, {n} entries");
            return Err(DataPlaneError::Layout {
                dir: dir.to_path_buf(),
                map: name,
                found: show(have),
                expected: show(want),
            });
        }
    }
    if found {
        let config = DataPlane::open(dir)?.config()?;
        if config.node_id != 0 && config.layout != LAYOUT_VERSION {
            return Err(DataPlaneError::Layout {
                dir: dir.to_path_buf(),
                map: names::CONFIG,
                found: format!("layout version {}", config.layout),
                expected: format!("layout version {LAYOUT_VERSION}"),
            });
        }
    }
    Ok(found)
}

/// Where the link of `program` on `iface` is pinned: `link-<program>-<iface>`. bpffs
/// refuses names with a dot, which interface names may have (`eth0.100`); a colon, which
/// no interface name has, stands in for it.
fn link_pin(dir: &Path, program: &str, iface: &str) -> PathBuf {
    dir.join(format!(
        "{LINK_PIN_PREFIX}{program}-{}",
        iface.replace('.', ":")
    ))
}

/// The links pinned under `dir`.
fn pinned_links(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(LINK_PIN_PREFIX))
        .map(|e| e.path())
        .collect()
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

    /// Whether an earlier agent's pinned maps were adopted.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Attaches program `name` to `iface` through a pinned link. Where an earlier agent
    /// left a link for the same program and interface, this program replaces its
    /// program on that link, atomically. The kernel picks native (driver) mode where the
    /// driver has it and generic mode elsewhere.
    pub fn attach(&mut self, name: &'static str, iface: &str) -> Result<Attached> {
        let pin = link_pin(&self.dir, name, iface);
        let prog = program(&mut self.ebpf, name)?;
        let prog_err = |op: String| {
            move |e| DataPlaneError::Program {
                name: name.into(),
                op,
                source: Box::new(e),
            }
        };
        let mut how = Attached::New;
        let id = match PinnedLink::from_pin(&pin) {
            Ok(pinned) => {
                // Pinned links only come from bpf_link_create, so this is an XDP FdLink.
                let old =
                    XdpLink::try_from(FdLink::from(pinned)).map_err(|e| DataPlaneError::Link {
                        pin: pin.clone(),
                        reason: e.to_string(),
                    })?;
                match prog.attach_to_link(old) {
                    Ok(id) => {
                        how = Attached::Replaced;
                        id
                    }
                    // The interface the link was on is gone (a recreated veth): its
                    // link is defunct. Start over on the interface as it is now.
                    Err(e) => {
                        tracing::warn!(
                            "{}: cannot take over ({e}); attaching afresh",
                            pin.display()
                        );
                        std::fs::remove_file(&pin)
                            .map_err(io_err("cannot remove stale link pin", &pin))?;
                        prog.attach(iface, XdpMode::Default)
                            .map_err(prog_err(format!("attach to {iface}")))?
                    }
                }
            }
            Err(_) => prog
                .attach(iface, XdpMode::Default)
                .map_err(prog_err(format!("attach to {iface}")))?,
        };
        let link = prog
            .take_link(id)
            .map_err(prog_err(format!("take the link on {iface}")))?;
        let link = FdLink::try_from(link).map_err(|_| DataPlaneError::Link {
            pin: pin.clone(),
            reason: "the kernel attached through netlink, not bpf_link (Linux 5.9+ is needed \
                     for a data plane that outlives its agent)"
                .into(),
        })?;
        // A replaced link is pinned already; a new one is pinned now. Either way the
        // handle stays ours, to close on a clean stop.
        let link = match how {
            Attached::Replaced => link,
            Attached::New => FdLink::from(link.pin(&pin).map_err(|e| DataPlaneError::Link {
                pin: pin.clone(),
                reason: format!("cannot pin: {e}"),
            })?),
        };
        self.links.push(AttachedLink {
            program: name,
            iface: iface.to_string(),
            pin,
            link,
        });
        Ok(how)
    }

    /// `(program, interface)` pairs attached so far.
    pub fn attached(&self) -> Vec<(&'static str, String)> {
        self.links
            .iter()
            .map(|l| (l.program, l.iface.clone()))
            .collect()
    }

    /// Removes the pinned links of an earlier agent that this one did not take over
    /// (interfaces no longer configured): their programs come off those interfaces.
    pub fn prune_links(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for pin in pinned_links(&self.dir) {
            if self.links.iter().any(|l| l.pin == pin) {
                continue;
            }
            std::fs::remove_file(&pin).map_err(io_err("cannot remove link pin", &pin))?;
            removed.push(pin);
        }
        Ok(removed)
    }

    /// Leaves everything in place: the programs stay attached through their pinned links
    /// and the maps pinned, forwarding on the last routes until an agent adopts them.
    pub fn keep(self) {
        drop(self);
    }

    /// Detaches every program and removes the pinned maps and their directory.
    pub fn teardown(self) -> Result<()> {
        let Loaded {
            ebpf, dir, links, ..
        } = self;
        for l in links {
            std::fs::remove_file(&l.pin).map_err(io_err("cannot unpin link", &l.pin))?;
            // The last handle on an unpinned link: closing it detaches the program.
            drop(l.link);
        }
        drop(ebpf);
        unpin(&dir)
    }
}

/// Removes the pinned maps and links of a node (also a stale set left by a killed
/// agent); its programs come off their interfaces with the links.
pub fn unpin(dir: &Path) -> Result<()> {
    for p in pinned_links(dir) {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot unpin", &p)(e)),
        }
    }
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
