use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Builds `matrix-ebpf` for `bpfel-unknown-none` (nightly, `-Z build-std=core`,
/// bpf-linker) and leaves the object in OUT_DIR, where `src/dataplane` embeds it.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "matrix-ebpf")
        .ok_or_else(|| anyhow!("matrix-ebpf package not found"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let features: &[&str] = if std::env::var_os("CARGO_FEATURE_DEBUG_LOG").is_some() {
        &["debug-log"]
    } else {
        &[]
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "matrix-ebpf",
            root_dir: root.as_str(),
            features,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
