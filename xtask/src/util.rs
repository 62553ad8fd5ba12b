//! Running commands with clear failures.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

/// Cargo's target folder (CARGO_TARGET_DIR when set, so a persistent one is reused).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// A command that runs in the workspace root.
pub fn command(program: impl Into<std::ffi::OsString>) -> Command {
    let mut cmd = Command::new(program.into());
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, failing with its command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its standard output, or None when it cannot start or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo that runs this xtask (CARGO), in the workspace root.
pub fn cargo_command() -> Command {
    command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs cargo with `args`.
pub fn cargo(args: &[&str]) -> Result<()> {
    run(cargo_command().args(args))
}

/// Builds the release `relsim` with every backend (CUDA needs its driver only at run time, so
/// the binary runs everywhere and `--backend auto` picks what the machine has); returns its path.
pub fn build_release_relsim() -> Result<std::path::PathBuf> {
    cargo(&["build", "--release", "-p", "relsim-companion", "--features", "wgpu,cuda"])?;
    Ok(target_dir().join("release/relsim"))
}

/// Points `cmd` at lavapipe, Mesa's software Vulkan driver (installed from Debian when absent),
/// so burn-wgpu runs on the CPU: the GPU code path, checked on machines without a GPU.
pub fn software_vulkan(cmd: &mut Command) -> Result<&mut Command> {
    let find = || -> Option<PathBuf> {
        std::fs::read_dir("/usr/share/vulkan/icd.d")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lvp_icd")))
    };
    let icd = match find() {
        Some(icd) => icd,
        None => {
            step("installing lavapipe (Debian mesa-vulkan-drivers)");
            apt_install(&["mesa-vulkan-drivers", "libvulkan1"])?;
            find().context("mesa-vulkan-drivers installed no lavapipe driver (lvp_icd*.json) in /usr/share/vulkan/icd.d")?
        }
    };
    cmd.env("VK_ICD_FILENAMES", icd);
    // The Vulkan loader warns on every start without a runtime directory.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    Ok(cmd)
}

/// Prints a step header.
pub fn step(what: &str) {
    println!("\n==> {what}");
}

/// True when `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Installs Debian packages (as root, or through sudo).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let root_user = output(Command::new("id").arg("-u")).map(|s| s.trim() == "0").unwrap_or(false);
    let mut prefix: Vec<&str> = if root_user { vec![] } else { vec!["sudo"] };
    prefix.extend(["env", "DEBIAN_FRONTEND=noninteractive"]);
    let apt = |args: &[&str]| {
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..]).args(args);
        run(&mut cmd)
    };
    // The package lists may be empty on a fresh machine.
    apt(&["apt-get", "update", "-qq"])?;
    apt(&[&["apt-get", "install", "-y", "-qq"][..], packages].concat())
        .with_context(|| format!("installing Debian packages {packages:?}"))
}
