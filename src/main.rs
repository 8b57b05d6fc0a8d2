//! The `jisr` command. Everything lives in the library; see `jisr::cli`.

fn main() -> std::process::ExitCode {
    jisr::cli::main()
}
