//! The command line (docs/contracts.md): parses arguments, loads the config, opens the store,
//! runs the pipeline, prints what the user needs and maps the outcome to the exit code.
//!
//! Exit codes: 0 all good; 1 the run finished but some sources or outputs failed (or `parse`
//! could not read its input); 2 fatal (config invalid, store unusable, usage); 3 another run
//! holds the lock.

use std::fs::{File, TryLockError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};
use url::Url;

use crate::config::{Config, Location, Settings};
use crate::fetch::{FetchOutcome, Fetcher, Validators};
use crate::normalize::language::Detector;
use crate::pipeline::{self, Ctx, RunReport};
use crate::store::{self, AnyStore};

#[derive(Parser, Debug)]
#[command(
    name = "feedloom",
    version,
    about = "Pull feeds, normalise every item, republish merged feeds"
)]
struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "FEEDLOOM_CONFIG",
        default_value = "config.toml"
    )]
    config: PathBuf,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log lines as text or as one JSON object each (for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One run for cron: fetch the due sources, store their items, republish what changed.
    Refresh {
        /// Fetch every source, due or not (still with conditional requests).
        #[arg(long)]
        force: bool,
        /// Only this source (repeatable).
        #[arg(long = "source", value_name = "NAME")]
        sources: Vec<String>,
        /// Print a machine-readable run report on stdout.
        #[arg(long, value_enum)]
        report: Option<ReportFormat>,
    },
    /// Rewrite every output from the store without fetching.
    Publish,
    /// Daemon: refresh each source when due and serve the outputs over HTTP (`listen`).
    /// SIGTERM/SIGINT stop it cleanly; SIGHUP reloads the config.
    Serve,
    /// Parse and normalise one document and print it; stores nothing.
    Parse {
        /// A file path or an http(s) URL.
        input: String,
        /// Print the JSON contract form.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config file.
    Check,
    /// OPML in and out.
    Sources {
        #[command(subcommand)]
        action: SourcesAction,
    },
    /// List an output feed's recent candidates with the rule that kept or dropped each.
    Explain {
        /// The `[[feed]]` name.
        #[arg(long)]
        feed: String,
        /// How many of the newest candidates to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum SourcesAction {
    /// Add every feed of an OPML file that is not configured yet as a [[source]].
    Import {
        /// The OPML file.
        file: PathBuf,
    },
    /// Print the configured sources as OPML 2.0.
    Export,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReportFormat {
    Json,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli);
    // The blocking pool runs document parses (one per core: pipeline's `CORES`), the SQLite
    // connection (one holder at a time) and short file and page work; name lookups, which may
    // wait for seconds, have threads of their own (`fetch::http::lookup`). Left unbounded the
    // pool grew a thread per waiting task, and glibc gives each thread an arena of its own that
    // keeps what it freed: an update at 1,000 sources peaked at 117-121 MB, bounded at 102.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores + 2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("feedloom: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("feedloom: {}", causes(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each cause once: many of our errors already end with
/// their cause's message (`database …: stored data is unreadable: <cause>`), which `{:#}` would
/// repeat.
fn causes(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if line.is_empty() {
            line = said;
        } else if !line.ends_with(&said) {
            line.push_str(": ");
            line.push_str(&said);
        }
    }
    line
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "error",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEEDLOOM_LOG");
    // `serve` is a daemon: its one line per refreshed source is what an operator reads.
    let default = if matches!(cli.command, Command::Serve) && !cli.quiet && cli.verbose == 0 {
        "info"
    } else {
        default
    };
    let filter = filter
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("feedloom={default}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check => Ok(check(&cli.config)),
        Command::Parse { input, json } => parse(&input, json).await,
        Command::Refresh {
            force,
            sources,
            report,
        } => refresh(&cli.config, force, sources, report, cli.quiet).await,
        Command::Publish => publish(&cli.config).await,
        Command::Serve => serve(&cli.config).await,
        Command::Explain { feed, limit } => explain(&cli.config, &feed, limit).await,
        Command::Sources {
            action: SourcesAction::Import { file },
        } => Ok(import(&cli.config, &file)),
        Command::Sources {
            action: SourcesAction::Export,
        } => export(&cli.config).await,
    }
}

fn load(path: &Path) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        2
    })
}

fn check(path: &Path) -> u8 {
    match load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} sources, {} feeds)",
                path.display(),
                c.sources.len(),
                c.feeds.len()
            );
            0
        }
        Err(code) => code,
    }
}

/// Holds the run lock: an OS lock on a file beside the database, so a crashed run never blocks
/// the next one. A PostgreSQL database needs none: runs share it through leases on sources
/// and the publish lock.
struct RunLock {
    _file: Option<File>,
}

fn lock(config: &Config) -> Result<Option<RunLock>> {
    if store::is_url(&config.settings.database) {
        return Ok(Some(RunLock { _file: None }));
    }
    let path = PathBuf::from(format!("{}.lock", config.settings.database));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: Some(file) })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("lock {}", path.display())),
    }
}

async fn open(config: Config) -> Result<Arc<Ctx<AnyStore>>> {
    // The HTTP client (which reads the system's root certificates, about 10 ms) and the
    // language detector are made on the blocking pool while the store opens.
    let settings = config.settings.clone();
    let made = tokio::task::spawn_blocking(move || {
        Fetcher::new(&settings).map(|f| (f, Arc::new(Detector::new(&settings.languages))))
    });
    // Every worker may be in a store call at once, plus a claim and a publish.
    let connections = config.settings.concurrency + 2;
    let store = AnyStore::open(&config.settings.database, connections).await?;
    std::fs::create_dir_all(&config.settings.output_dir).with_context(|| {
        format!(
            "output_dir {} is not writable",
            config.settings.output_dir.display()
        )
    })?;
    let (fetcher, detector) = made.await.context("making the HTTP client")??;
    Ok(Arc::new(Ctx {
        config: Arc::new(config),
        store,
        fetcher,
        detector,
    }))
}

async fn refresh(
    path: &Path,
    force: bool,
    only: Vec<String>,
    report_format: Option<ReportFormat>,
    quiet: bool,
) -> Result<u8> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    for name in &only {
        if config.source(name).is_none() {
            eprintln!(
                "feedloom: --source {name}: no such source in {}",
                path.display()
            );
            return Ok(2);
        }
    }
    let Some(_lock) = lock(&config)? else {
        eprintln!(
            "feedloom: another run holds the lock on {}.lock; not starting",
            config.settings.database
        );
        return Ok(3);
    };
    let ctx = open(config).await?;
    let started = Utc::now();
    let clock = std::time::Instant::now();
    // A progress bar only for a person at a terminal; cron (stderr not a TTY) sees nothing.
    let bar = if std::io::stderr().is_terminal() && !quiet {
        let total = if only.is_empty() {
            ctx.config.sources.len()
        } else {
            only.len()
        };
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} sources  {msg}")
        {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let on_done = |r: &pipeline::SourceReport| {
        if let Some(b) = &bar {
            b.set_message(r.source.clone());
            b.inc(1);
        }
    };
    let sources = pipeline::refresh(ctx.clone(), &only, force, started, &on_done).await?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let at = |what: &str| tracing::debug!(ms = clock.elapsed().as_millis() as u64, "{what}");
    at("sources refreshed");
    let pruned = pipeline::prune(&ctx, started).await?;
    at("pruned");
    let publish = pipeline::publish_all(&ctx, started, false).await?;
    at("published");
    let report = RunReport {
        started,
        millis: clock.elapsed().as_millis() as u64,
        sources,
        pruned,
        publish,
    };
    for s in report.failed_sources() {
        eprintln!(
            "feedloom: source {}: {}",
            s.source,
            s.error.as_deref().unwrap_or("failed")
        );
    }
    for f in &report.publish.failed {
        eprintln!("feedloom: {f}");
    }
    if let Some(ReportFormat::Json) = report_format {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    }
    let failed = report.failed_sources().next().is_some() || !report.publish.failed.is_empty();
    Ok(u8::from(failed))
}

async fn explain(path: &Path, name: &str, limit: usize) -> Result<u8> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(feed) = config.feeds.iter().find(|f| f.name == name).cloned() else {
        let names: Vec<&str> = config.feeds.iter().map(|f| f.name.as_str()).collect();
        eprintln!(
            "feedloom: explain: no [[feed]] named {name:?} in {} (feeds: {})",
            path.display(),
            names.join(", ")
        );
        return Ok(2);
    };
    let ctx = open(config).await?;
    let decided = pipeline::explain(&ctx, &feed, limit, Utc::now()).await?;
    let mut text = String::new();
    for (it, decision) in &decided {
        use std::fmt::Write as _;
        writeln!(
            text,
            "{}  {:<44}  {:<14}  {}",
            it.sort_date.format("%Y-%m-%d %H:%M"),
            decision.to_string(),
            it.source,
            it.item.title
        )?;
    }
    if decided.is_empty() {
        text.push_str("no stored items from this feed's sources (run `feedloom refresh` first)\n");
    }
    print_stdout(&text)?;
    Ok(0)
}

fn import(config: &Path, opml: &Path) -> u8 {
    match crate::sources::import(config, opml) {
        Ok(r) => {
            println!(
                "{}: added {} source(s){}; skipped {} already configured or not http(s)",
                config.display(),
                r.added.len(),
                if r.added.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.added.join(", "))
                },
                r.skipped
            );
            0
        }
        Err(crate::sources::ImportError::Invalid(e)) => {
            eprintln!(
                "feedloom: sources import: the config would not load after the import; nothing written\n{e}"
            );
            2
        }
        Err(e) => {
            eprintln!("feedloom: sources import: {e}");
            1
        }
    }
}

async fn export(path: &Path) -> Result<u8> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let ctx = open(config).await?;
    let opml = pipeline::export_opml(&ctx).await?;
    print_stdout(&String::from_utf8_lossy(&opml))?;
    Ok(0)
}

async fn publish(path: &Path) -> Result<u8> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(_lock) = lock(&config)? else {
        eprintln!("feedloom: another run holds the lock; not publishing");
        return Ok(3);
    };
    let ctx = open(config).await?;
    let report = pipeline::publish_all(&ctx, Utc::now(), true).await?;
    for f in &report.failed {
        eprintln!("feedloom: {f}");
    }
    Ok(u8::from(!report.failed.is_empty()))
}

/// `feedloom serve`: holds the run lock for its whole life (so a cron `refresh` meanwhile exits
/// 3 instead of writing the same store and outputs), serves the output folder from memory and
/// runs the scheduler until SIGTERM/SIGINT.
async fn serve(path: &Path) -> Result<u8> {
    use crate::schedule::{self, Daemon};
    use crate::serve::{self as http, Shared, Site};
    use tokio::signal::unix::{SignalKind, signal};
    use tokio::sync::{mpsc, watch};

    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(lock) = lock(&config)? else {
        eprintln!(
            "feedloom: another run holds the lock on {}.lock; not starting",
            config.settings.database
        );
        return Ok(3);
    };
    let listen = config.settings.listen;
    let live = schedule::live(&config.settings);
    let ctx = open(config).await?;
    let dir = ctx.config.settings.output_dir.clone();
    let site = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Site::load(&dir, &Site::default())).await?
    }
    .with_context(|| format!("read output_dir {}", dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!("feedloom: serving {} on http://{addr}/", dir.display());

    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(site, live, push_tx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: finishing in-flight work, then exiting"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: finishing in-flight work, then exiting"); break; }
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading the config"); let _ = reload_tx.send(()); }
            }
        }
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(http::serve(listener, shared.clone(), async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));
    let daemon = Daemon::new(ctx, shared, path.to_path_buf())?;
    daemon.run(stop_rx, reload_rx, push_rx).await;
    // The listener stopped at the signal; open connections get a moment to finish.
    match tokio::time::timeout(std::time::Duration::from_secs(3), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server task failed"),
        Err(_) => tracing::warn!("connections still open after 3 s; closing them"),
    }
    drop(lock);
    tracing::info!("stopped");
    Ok(0)
}

async fn parse(input: &str, json: bool) -> Result<u8> {
    let (location, url) = if input.starts_with("http://") || input.starts_with("https://") {
        match Url::parse(input) {
            Ok(u) => (Location::Http(u.clone()), Some(u)),
            Err(e) => {
                eprintln!("feedloom: parse {input}: not a URL: {e}");
                return Ok(1);
            }
        }
    } else if let Some(p) = input
        .strip_prefix("file:")
        .and_then(|_| Url::parse(input).ok())
        .and_then(|u| u.to_file_path().ok())
    {
        (Location::File(p), None)
    } else {
        (Location::File(PathBuf::from(input)), None)
    };
    // A person naming a document on the command line may name a local server.
    let settings = Settings {
        allow_private_networks: true,
        ..Settings::default()
    };
    let fetcher = Fetcher::new(&settings)?;
    let fetched = match fetcher.fetch(&location, &Validators::default()).await {
        Ok(FetchOutcome::Modified(f)) => f,
        Ok(FetchOutcome::NotModified { .. }) => {
            eprintln!("feedloom: parse {input}: unexpected 304 Not Modified");
            return Ok(1);
        }
        Err(e) => {
            eprintln!("feedloom: parse {e}");
            return Ok(1);
        }
    };
    let final_url = url.and_then(|_| Url::parse(&fetched.final_location).ok());
    let parsed = match pipeline::parse_source(
        &fetched.body,
        fetched.content_type.as_deref(),
        final_url,
        None,
        &Detector::new(&settings.languages),
        None,
        &settings.parse_limits,
        Utc::now(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("feedloom: parse {input}: {e}");
            return Ok(1);
        }
    };
    let mut text = String::new();
    if json {
        // Through Value so keys come out sorted: stable, diffable output.
        let value = serde_json::to_value(&parsed)?;
        text = serde_json::to_string_pretty(&value)?;
        text.push('\n');
    } else {
        use std::fmt::Write as _;
        let f = &parsed.feed;
        writeln!(
            text,
            "{} ({}, {} via {}): {} items",
            f.title.as_deref().unwrap_or("(untitled)"),
            f.format.as_str(),
            f.encoding,
            f.encoding_from,
            parsed.items.len()
        )?;
        for it in &parsed.items {
            writeln!(
                text,
                "  {}  {}  {}",
                it.date()
                    .map_or_else(|| "(no date)".into(), |d| d.to_rfc3339()),
                it.title,
                it.link.as_deref().unwrap_or("")
            )?;
        }
    }
    print_stdout(&text)?;
    Ok(0)
}

/// Writes to stdout; a closed pipe (`feedloom parse x | head`) is not an error.
fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    /// A cause is added to the line unless the line already ends with it.
    #[test]
    fn causes_are_said_once() {
        let io = || std::io::Error::other("disk full");
        // A context over a cause that does not repeat it: both.
        let e = anyhow::Error::new(io()).context("write public/all.rss");
        assert_eq!(super::causes(&e), "write public/all.rss: disk full");
        // An error whose message ends with its cause's: the cause once.
        #[derive(Debug, thiserror::Error)]
        #[error("database x.db: {source}")]
        struct Store {
            #[source]
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Store { source: io() });
        assert_eq!(super::causes(&e), "database x.db: disk full");
        // And under a context of its own.
        let e: anyhow::Result<()> = Err(Store { source: io() }).context("publish");
        assert_eq!(
            super::causes(&e.unwrap_err()),
            "publish: database x.db: disk full"
        );
    }
}
