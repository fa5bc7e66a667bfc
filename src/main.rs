use std::process::ExitCode;

/// jemalloc rather than the system's malloc on Linux: about 10% less CPU on a refresh, and no
/// more memory with one arena per CPU (`.cargo/config.toml`; BENCHMARKS.md, session 11).
#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    feedloom::cli::main()
}
