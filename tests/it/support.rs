//! Shared helpers: temp workspaces, running the real binary, reading outputs.

use std::path::{Path, PathBuf};
use std::process::Output;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_feedloom"))
}

/// A temp folder holding a config and whatever the test writes; removed on drop.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A workspace holding a copy of the shipped config.toml and feeds/.
    pub fn shipped() -> Workspace {
        let ws = Workspace::new();
        std::fs::copy(repo().join("config.toml"), ws.path().join("config.toml")).unwrap();
        std::fs::create_dir(ws.path().join("feeds")).unwrap();
        for e in std::fs::read_dir(repo().join("feeds")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), ws.path().join("feeds").join(e.file_name())).unwrap();
        }
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name))
            .unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Runs `feedloom ARGS --config <ws>/config.toml` and returns its output.
    pub async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env_remove("FEEDLOOM_CONFIG")
            .env_remove("FEEDLOOM_LOG")
            .output()
            .await
            .expect("run feedloom")
    }

    /// Every file in the output folder with its bytes (but the record of the last publish,
    /// which is not an output).
    pub fn outputs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(self.path().join("public"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != feedloom::pipeline::PUBLISHED_MARKER)
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Workspace {
    /// Temporary files a publish left in the output folder (`.feedloom-*`).
    pub fn temp_files(&self) -> Vec<String> {
        self.outputs()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(".feedloom-"))
            .collect()
    }

    /// Modification times of every output file, in name order.
    pub fn output_mtimes(&self) -> Vec<std::time::SystemTime> {
        self.outputs()
            .iter()
            .map(|(name, _)| {
                let p = self.path().join("public").join(name);
                std::fs::metadata(p).unwrap().modified().unwrap()
            })
            .collect()
    }
}

/// The language detector with the default candidates.
pub fn detector() -> feedloom::normalize::language::Detector {
    feedloom::normalize::language::Detector::new(
        &["ru", "uk", "kk", "be", "en", "de", "fr", "es"].map(String::from),
    )
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
