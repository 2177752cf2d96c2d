//! The Debian package: `cargo deb` builds it from `[package.metadata.deb]`
//! in Cargo.toml; this checks what it holds and that the binary it ships
//! accepts the config it ships, the way `dpkg -i` would lay them out.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::e2e::{TempDir, tool};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Builds the package (a release build) and returns the .deb's path.
fn build_deb(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let which = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .expect("run cargo");
    assert!(
        which.status.success(),
        "cargo-deb is not installed; run `bash tests/setup.sh` (it runs `cargo install cargo-deb --locked`)"
    );
    let built = Command::new(&cargo)
        .current_dir(MANIFEST_DIR)
        .args(["deb", "--locked", "--output"])
        .arg(out)
        .output()
        .expect("run cargo deb");
    assert!(
        built.status.success(),
        "cargo deb failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::read_dir(out)
        .expect("read the output dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("cargo deb wrote a .deb")
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new(tool("dpkg-deb"))
        .args(args)
        .arg(deb)
        .output()
        .expect("run dpkg-deb");
    assert!(out.status.success(), "dpkg-deb {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_ships_the_binary_the_conffile_the_unit_and_creates_the_user() {
    let dir = TempDir::new("deb");
    let deb = build_deb(dir.path());

    let listing = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/sbin/taproot",
        "./etc/taproot/taproot.toml",
        "./usr/share/doc/taproot/README.Debian",
    ] {
        assert!(
            listing.contains(path),
            "{path} is in the package:\n{listing}"
        );
    }
    assert!(
        listing.contains("/systemd/system/taproot.service"),
        "the unit is in the package:\n{listing}"
    );
    let binary = listing
        .lines()
        .find(|l| l.ends_with("./usr/sbin/taproot"))
        .unwrap_or_default();
    assert!(
        binary.starts_with("-rwxr-xr-x 0/0"),
        "the binary is executable and root's: {binary}"
    );

    let info = dpkg_deb(&["--info"], &deb);
    assert!(info.contains("Package: taproot"), "{info}");
    assert!(info.contains("adduser"), "it depends on adduser: {info}");

    let control = dir.path().join("control");
    let status = Command::new(tool("dpkg-deb"))
        .arg("--control")
        .arg(&deb)
        .arg(&control)
        .status()
        .expect("run dpkg-deb --control");
    assert!(status.success());
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    assert!(
        conffiles.lines().any(|l| l == "/etc/taproot/taproot.toml"),
        "the config is a conffile, kept across upgrades: {conffiles:?}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("a postinst");
    assert!(
        postinst.contains("adduser --system") && postinst.contains("taproot"),
        "installing creates the system user: {postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper") || postinst.contains("systemctl"),
        "installing enables the unit: {postinst}"
    );

    // Unpacked as dpkg would, the shipped binary accepts the shipped config.
    let root = dir.path().join("root");
    let status = Command::new(tool("dpkg-deb"))
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .expect("run dpkg-deb -x");
    assert!(status.success());
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/taproot.service"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/systemd/system/taproot.service")))
        .expect("the unit unpacks");
    assert!(unit.contains("ExecStart=/usr/sbin/taproot --config /etc/taproot/taproot.toml run"));
    let checked = Command::new(root.join("usr/sbin/taproot"))
        .arg("--config")
        .arg(root.join("etc/taproot/taproot.toml"))
        .arg("check-config")
        .output()
        .expect("run the packaged binary");
    assert!(
        checked.status.success(),
        "check-config on the installed config: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
