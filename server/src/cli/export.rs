//! `pairwise export`: the same export the API runs, into a folder of your choice.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use domain::{ExportFormat, ExportSpec, FileType, PairColumn};
use store::PgPool;
use uuid::Uuid;

fn parse<T: std::str::FromStr<Err = domain::Invalid>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: domain::Invalid| e.0)
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Campaign to export (repeat for several).
    #[arg(long = "campaign", required = true)]
    pub campaigns: Vec<Uuid>,
    /// trl, trl-conversational, hh-rlhf or raw.
    #[arg(long, value_parser = parse::<ExportFormat>)]
    pub format: ExportFormat,
    /// Folder for the files and the dataset card (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// jsonl or parquet.
    #[arg(long, value_parser = parse::<FileType>, default_value = "jsonl")]
    pub file_type: FileType,
    /// Gzip the JSONL files.
    #[arg(long)]
    pub gzip: bool,
    /// majority or vote-share.
    #[arg(long, value_parser = parse::<domain::Aggregation>, default_value = "majority")]
    pub aggregation: domain::Aggregation,
    /// drop or keep items whose consensus is a tie (kept rows carry `outcome`).
    #[arg(long, value_parser = parse::<domain::Keep>, default_value = "drop")]
    pub ties: domain::Keep,
    /// drop or keep items whose consensus is "both bad".
    #[arg(long, value_parser = parse::<domain::Keep>, default_value = "drop")]
    pub both_bad: domain::Keep,
    /// Only judgments made at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only judgments made before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long, default_value_t = 1)]
    pub min_judgments: u32,
    /// Least share of votes agreeing with an item's consensus (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub min_agreement: f64,
    #[arg(long)]
    pub exclude_gold: bool,
    /// Leave out judgments by disabled accounts.
    #[arg(long)]
    pub exclude_disabled: bool,
    /// Share of prompts in a test split (0 = no split).
    #[arg(long, default_value_t = 0.0)]
    pub test_fraction: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Extra pair columns: margin, prompt_id, item_id, agreement, n_judgments, chosen_model,
    /// rejected_model.
    #[arg(long, value_delimiter = ',', value_parser = parse::<PairColumn>)]
    pub columns: Vec<PairColumn>,
    /// Raw format: e-mails instead of pseudonyms.
    #[arg(long)]
    pub reveal_labelers: bool,
    #[arg(long, default_value = "other")]
    pub license: String,
}

impl ExportArgs {
    pub fn spec(&self) -> Result<ExportSpec, domain::Invalid> {
        ExportSpec {
            campaigns: self.campaigns.clone(),
            format: self.format,
            file_type: self.file_type,
            gzip: self.gzip,
            aggregation: self.aggregation,
            ties: self.ties,
            both_bad: self.both_bad,
            since: self.since,
            until: self.until,
            min_judgments: self.min_judgments,
            min_agreement: self.min_agreement,
            exclude_gold: self.exclude_gold,
            exclude_disabled: self.exclude_disabled,
            test_fraction: self.test_fraction,
            split_seed: self.seed,
            columns: self.columns.clone(),
            reveal_labelers: self.reveal_labelers,
            license: self.license.clone(),
        }
        .validated()
    }
}

/// Runs an export from the command line and records it like the API does.
pub async fn cli(pool: &PgPool, args: ExportArgs) -> anyhow::Result<()> {
    let spec = args.spec()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let dir = args
        .out
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.out.display()))?;
    let id = Uuid::now_v7();
    // This process writes the export itself, holding its lease like a worker would.
    let worker = format!("cli:{}", std::process::id());
    store::export::create_running(
        pool,
        id,
        &spec,
        &dir.to_string_lossy(),
        &worker,
        datasets::LEASE,
    )
    .await
    .context("recording the export")?;
    let started = Instant::now();
    let destination = datasets::Destination::Folder(&dir);
    let (files, counts) = datasets::run_leased(pool, id, &worker, &spec, destination).await?;
    let seconds = started.elapsed().as_secs_f64();
    for file in &files {
        println!(
            "{}  {:>10} rows  {:>12} bytes  sha256 {}",
            file.name, file.rows, file.bytes, file.sha256
        );
    }
    let read = if spec.format == ExportFormat::Raw {
        counts.rows
    } else {
        counts.judgments
    };
    println!(
        "export {id}: {} rows from {read} judgments in {seconds:.2} s ({:.0} judgments/s), peak memory {}",
        counts.rows,
        read as f64 / seconds.max(1e-9),
        engine::io::peak_rss_mib()
            .map_or_else(|| "unknown".into(), |mib| format!("{mib:.1} MiB"))
    );
    Ok(())
}
