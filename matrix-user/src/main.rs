fn main() -> anyhow::Result<()> {
    let mut ebpf = aya::Ebpf::load(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/matrix")))?;
    for name in ["matrix_underlay", "matrix_workload", "matrix_pass", "matrix_baseline_tx"] {
        let p: &mut aya::programs::Xdp = ebpf.program_mut(name).unwrap().try_into()?;
        p.load()?;
        println!("{name} loaded");
    }
    Ok(())
}
