//! Links the release `toolgate` binary on Linux with `layout.ld`, which places the code a
//! running proxy needs together at the start of its text: the kernel maps a program's code 64 KiB
//! around each page touched, so code spread over the binary keeps megabytes resident that code
//! laid out together keeps in a few hundred kilobytes (docs/reference/performance.md). The file
//! only orders code; a function it does not name is placed as the linker would place it anyway.

fn main() {
    println!("cargo:rerun-if-changed=layout.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TOOLGATE_NO_LAYOUT");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // Debug builds (the tests) link as they are; the order matters for the binary people run.
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("PROFILE") != "release" {
        return;
    }
    // benches/layout.sh profiles a build without it: valgrind names no function outside `.text`.
    if std::env::var_os("TOOLGATE_NO_LAYOUT").is_some() {
        return;
    }
    // The toolchain's own linkers (rust-lld, GNU ld) read an `INSERT` script; one chosen in
    // the configuration (mold, say) may not, and is left to its own order.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if std::env::var_os("RUSTC_LINKER").is_some() || flags.contains("fuse-ld") || flags.contains("linker=") {
        return;
    }
    let layout = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("layout.ld");
    println!("cargo:rustc-link-arg-bin=toolgate=-Wl,-T,{}", layout.display());
}
