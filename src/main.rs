//! The `jisr` command. Everything lives in the library; see `jisr::tools::cli`.

/// mimalloc rather than glibc's malloc: each call allocates and frees many
/// small buffers (HTTP/2 frames, headers, the audit record, which is freed on
/// the writer thread), and glibc's arenas spent ≈ 14 % of the gateway's CPU
/// on it at saturation (docs/BENCHMARKS.md, session 5). Built without
/// transparent huge pages (`no_thp`): with them, each thread's heap took a
/// 2 MiB page and peak RSS doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jisr::tools::cli::main()
}
