use std::process::ExitCode;

fn main() -> ExitCode {
    feedloom::cli::main()
}
