//! Trials of "Pocket Worlds": the engine in the smallest container that
//! runs it.
//!
//! A container image is the union of its layers, and the runtime stage of a
//! multi-stage build decides what ships: everything the entrypoint needs to
//! run, and nothing an attacker could use once inside. The trial: choose
//! that set from what the build stage holds (trial 1).
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

/// What a file of the build stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A program; `static_linked` if it needs no loader and no libraries.
    Executable { static_linked: bool },
    /// A shared library (`libc.so.6`, `libgcc_s.so.1`, ...).
    SharedLibrary,
    /// The dynamic loader (`ld-linux-x86-64.so.2`).
    Loader,
    /// TLS root certificates.
    Certificates,
    /// A compiler, linker or package manager (`rustc`, `cc`, `apt`).
    Toolchain,
    /// A shell (`/bin/sh`).
    Shell,
    /// Source code, or build output other than the binary (`target/`).
    Source,
}

/// One file of the build stage, and whether the entrypoint uses it when it
/// runs (what `ldd` and a trace of its run say).
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub path: &'static str,
    pub kind: Kind,
    pub needed: bool,
}

/// Trial 1. The runtime stage's contents: the paths to copy into a
/// `FROM scratch` image so that `entrypoint` runs, and nothing more.
///
/// The entrypoint itself always. A statically linked entrypoint needs no
/// loader and no library. A dynamically linked one needs the loader and
/// the shared libraries it uses (`needed`). Certificates go in when
/// `needed`. A toolchain, a shell or sources never do, needed or not: an
/// attacker who gets in should find no compiler and no shell, and the
/// entrypoint is started in exec form, without a shell. Keep the input's
/// order.
///
/// Example: a static `/nindub` among `/usr/bin/rustc` and `/bin/sh` →
/// `["/nindub"]`.
pub fn runtime_stage(items: &[Item], entrypoint: &str) -> Vec<&'static str> {
    todo!("the entrypoint, then what it needs, never tools, shells or sources")
}
