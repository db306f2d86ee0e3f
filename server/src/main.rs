//! `pairwise`: the server and its command-line tools.

fn main() -> anyhow::Result<()> {
    server::cli::main()
}
