use exercises::engineer::pocket_worlds as pw;
use pw::{Item, Kind};

// === Trial 1: the runtime stage ===

fn item(path: &'static str, kind: Kind, needed: bool) -> Item {
    Item { path, kind, needed }
}

pub fn runtime_stage() {
    let build = [
        item("/usr/local/cargo/bin/cargo", Kind::Toolchain, false),
        item("/usr/bin/cc", Kind::Toolchain, true),
        item("/bin/sh", Kind::Shell, true),
        item("/src", Kind::Source, false),
        item(
            "/etc/ssl/certs/ca-certificates.crt",
            Kind::Certificates,
            false,
        ),
        item("/lib64/ld-linux-x86-64.so.2", Kind::Loader, false),
        item("/lib/x86_64-linux-gnu/libc.so.6", Kind::SharedLibrary, true),
        item(
            "/lib/x86_64-linux-gnu/libm.so.6",
            Kind::SharedLibrary,
            false,
        ),
        item(
            "/nindub",
            Kind::Executable {
                static_linked: true,
            },
            true,
        ),
        item(
            "/nindub-gnu",
            Kind::Executable {
                static_linked: false,
            },
            true,
        ),
    ];
    assert_eq!(pw::runtime_stage(&build, "/nindub"), ["/nindub"]);
    assert_eq!(
        pw::runtime_stage(&build, "/nindub-gnu"),
        [
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/nindub-gnu"
        ]
    );
    let mut tls = build;
    tls[4].needed = true;
    assert_eq!(
        pw::runtime_stage(&tls, "/nindub"),
        ["/etc/ssl/certs/ca-certificates.crt", "/nindub"]
    );
    assert!(pw::runtime_stage(&build, "/missing").is_empty());
}
