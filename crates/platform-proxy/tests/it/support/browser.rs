//! Headless Chromium runs: a script under `tests/browser/` driven by node
//! with playwright-core, which `scripts/install-test-deps.sh` installs.

use std::process::Stdio;
use std::time::Duration;

/// What a browser script printed and whether it passed.
pub struct Run {
    pub passed: bool,
    pub stdout: String,
}

/// Runs `tests/browser/{script}` with `args`, bounded by 90 s; the
/// script's output is echoed for the test log.
pub async fn run(script: &str, args: &[&str]) -> Run {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists()
            && root
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        "headless Chromium and playwright-core are needed: run scripts/install-test-deps.sh"
    );
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("browser run finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    Run {
        passed: out.status.success(),
        stdout,
    }
}
