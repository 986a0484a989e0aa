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
    Executable { static_linked: bool },
    SharedLibrary,
    Loader,
    Certificates,
    Toolchain,
    Shell,
    Source,
}

/// One file of the build stage, and whether the entrypoint uses it.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub path: &'static str,
    pub kind: Kind,
    pub needed: bool,
}

/// Trial 1. The runtime stage's contents.
pub fn runtime_stage(items: &[Item], entrypoint: &str) -> Vec<&'static str> {
    let dynamic = items.iter().any(|i| {
        i.path == entrypoint
            && i.kind
                == Kind::Executable {
                    static_linked: false,
                }
    });
    items
        .iter()
        .filter(|i| {
            i.path == entrypoint
                || match i.kind {
                    Kind::Loader => dynamic,
                    Kind::SharedLibrary => dynamic && i.needed,
                    Kind::Certificates => i.needed,
                    _ => false,
                }
        })
        .map(|i| i.path)
        .collect()
}
