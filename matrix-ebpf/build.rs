use which::which;

/// `bpf-linker` is an undeclared build dependency of this crate (cargo cannot express a
/// binary dependency): rebuild when the linker binary changes.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => panic!("bpf-linker not found on PATH ({e}); run `cargo xtask setup`"),
    }
}
