//! Headless Chromium (Debian's package) as a test peer: renders a page to
//! a PNG and reads its pixels, for the HTML trace.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium, or a failed test that says how to install it (the convention
/// of `tests/support/e2e.rs`: a missing tool fails, it does not pass).
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`chromium` is not installed; install Debian's package \
                 (`apt-get install chromium`, as tests/setup.sh does) to render the HTML trace"
            )
        })
}

/// The headless screenshot of `page`, in `dir`, within a minute (`dir`
/// is left behind when this fails, with Chromium's log in it).
pub fn screenshot(chromium: &Path, dir: &Path, page: &Path) -> PathBuf {
    let png = dir.join("trace.png");
    let log =
        std::fs::File::create(dir.join("chromium.log")).unwrap_or_else(|e| panic!("log: {e}"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("log: {e}")))
        .stderr(log)
        // Its own process group, so that its helpers go with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start chromium: {e}"));
    let kill_group = |signal: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) | Err(_) => {
                kill_group("-KILL", child.id());
                let _ = child.wait();
                panic!(
                    "chromium did not finish within 60 s; its log:\n{}",
                    std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default()
                );
            }
        }
    };
    kill_group("-TERM", child.id());
    assert!(
        status.success() && png.is_file(),
        "chromium exited {status} without {}; its log:\n{}",
        png.display(),
        std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default()
    );
    png
}

/// The pixels of a PNG as RGB triples.
pub fn pixels(path: &Path) -> Vec<[u8; 3]> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("not a PNG: {e}"));
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .unwrap_or_else(|| panic!("too big"))
    ];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("bad PNG: {e}"));
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    bytes
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect()
}

/// A page rendered by headless Chromium, and its pixels.
pub struct Screenshot {
    pub dir: PathBuf,
    pub png: PathBuf,
    pub pixels: Vec<[u8; 3]>,
}

impl Screenshot {
    /// Writes `html` to a fresh directory and screenshots it at 1200x900.
    pub fn of_html(html: &str) -> Screenshot {
        let chromium = chromium();
        let dir = std::env::temp_dir().join(format!(
            "taproot-browser-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let page = dir.join("page.html");
        std::fs::write(&page, html).unwrap_or_else(|e| panic!("write: {e}"));
        let png = screenshot(&chromium, &dir, &page);
        let pixels = pixels(&png);
        Screenshot { dir, png, pixels }
    }

    /// The picture is a page, not a blank: several colours, and more than
    /// 1% of the pixels not white.
    pub fn assert_not_blank(&self) {
        assert!(
            self.pixels.len() >= 800 * 600,
            "a {}-pixel picture",
            self.pixels.len()
        );
        let mut colours = self.pixels.clone();
        colours.sort_unstable();
        colours.dedup();
        let white = self
            .pixels
            .iter()
            .filter(|p| **p == [255, 255, 255])
            .count();
        let inked = self.pixels.len() - white;
        assert!(colours.len() > 2, "{} colours", colours.len());
        assert!(
            inked * 100 > self.pixels.len(),
            "only {inked} of {} pixels are not white ({})",
            self.pixels.len(),
            self.png.display()
        );
    }

    /// Pixels within 3 of `colour` in every channel.
    pub fn count_near(&self, colour: [u8; 3]) -> usize {
        self.pixels
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 3))
            .count()
    }

    pub fn clean_up(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
