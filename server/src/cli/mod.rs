//! The command line: one module per group of subcommands.

mod accounts;
mod export;
mod generate;
mod import;
mod serve;
mod train;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use domain::Role;

use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "pairwise",
    version,
    about = "Human preference collection for RLHF"
)]
struct Cli {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "PAIRWISE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve the web app and API.
    Serve {
        #[arg(long, env = "PAIRWISE_ADDR", default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        /// Mark cookies Secure (serve behind HTTPS).
        #[arg(long, env = "PAIRWISE_SECURE_COOKIES", default_value_t = false)]
        secure_cookies: bool,
        /// E-mail of the admin created on first start, when no user exists yet (default: a
        /// random `admin-…@localhost`, printed then, so that nobody can guess it).
        #[arg(long, env = "PAIRWISE_ADMIN_EMAIL")]
        admin_email: Option<String>,
        /// Behind a reverse proxy: the header it sets to the client's address, e.g.
        /// `X-Forwarded-For` (its last entry is used). Unset, headers are not trusted.
        #[arg(long, env = "PAIRWISE_TRUSTED_PROXY_HEADER")]
        trusted_proxy_header: Option<String>,
        #[arg(long, env = "PAIRWISE_DB_POOL", default_value_t = 16)]
        pool_size: u32,
        /// Folder with the built site (`pkg/`, assets), as cargo-leptos writes it.
        #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
        site_root: String,
        /// Folder for the workers' scratch files and checkpoints (and the storage by default).
        #[arg(long, env = "PAIRWISE_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
        /// Where exports and checkpoints are kept: a folder, or `s3://bucket/prefix` shared by
        /// every host (default: the data folder).
        #[arg(long, env = "PAIRWISE_STORAGE")]
        storage: Option<String>,
        /// Generation workers inside the server, and with any one export and one training
        /// worker (0: only `pairwise worker` processes run background work).
        #[arg(long, env = "PAIRWISE_WORKERS", default_value_t = 1)]
        workers: usize,
        /// Remove the files of exports this many days after they finished (default: keep).
        #[arg(long, env = "PAIRWISE_EXPORT_RETENTION_DAYS")]
        export_retention_days: Option<u32>,
    },
    /// Run workers (generation, exports, training; e.g. on GPU hosts) against the same
    /// database and storage as the servers.
    Worker {
        #[arg(long, env = "PAIRWISE_WORKERS", default_value_t = 1)]
        workers: usize,
        /// Folder for scratch files and trained checkpoints (`models/`).
        #[arg(long, env = "PAIRWISE_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
        /// As for `serve`: must be the servers' storage.
        #[arg(long, env = "PAIRWISE_STORAGE")]
        storage: Option<String>,
        /// As for `serve`.
        #[arg(long, env = "PAIRWISE_EXPORT_RETENTION_DAYS")]
        export_retention_days: Option<u32>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Import a JSONL or CSV file of prompts with responses into a campaign.
    Import {
        #[arg(long)]
        campaign: uuid::Uuid,
        file: PathBuf,
    },
    /// Export preference data (TRL, HH-RLHF or raw; JSONL or Parquet) with a dataset card.
    Export(export::ExportArgs),
    /// Generate candidates with the model engine.
    Generate(generate::GenerateArgs),
    /// Train a reward model (Bradley–Terry, scalar head) on preference pairs.
    TrainReward(train::TrainRewardArgs),
    /// Score a response with a reward model.
    Reward(train::RewardArgs),
    /// Fine-tune a model with DPO on preference pairs.
    Dpo(train::DpoArgs),
    /// Internal: the training process a training worker starts for each run (the job comes
    /// as JSON on standard input, reports leave as JSON lines on standard output).
    #[command(hide = true)]
    TrainRun,
    /// Model facts.
    Model {
        #[command(subcommand)]
        command: generate::ModelCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from PAIRWISE_PASSWORD or standard input.
    Add {
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; printed once, as the last word of the output.
    Create {
        email: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: domain::Invalid| e.0)
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_logging();
    match cli.command {
        Command::Generate(args) => return generate::generate(args),
        Command::Model { command } => return generate::model(command),
        Command::TrainReward(args) => return train::train_reward(args),
        Command::Reward(args) => return train::reward(args),
        Command::Dpo(args) => return train::dpo(args),
        Command::TrainRun => return crate::workers::training::trainer_process(),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

fn days(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(n) * 86_400)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(url) = cli.database_url else {
        bail!("set PAIRWISE_DATABASE_URL (or --database-url) to a PostgreSQL URL");
    };
    match cli.command {
        Command::Serve {
            addr,
            secure_cookies,
            admin_email,
            trusted_proxy_header,
            pool_size,
            site_root,
            data_dir,
            storage,
            workers,
            export_retention_days,
        } => {
            let settings = crate::Settings {
                addr,
                site_root,
                storage: open_storage(storage.as_deref(), &data_dir)?,
                data_dir,
                secure_cookies,
                trusted_proxy_header,
                workers: crate::workers::Counts::standard(workers),
                export_retention: export_retention_days.map(days),
            };
            serve::serve(&url, pool_size, admin_email.as_deref(), settings).await?;
        }
        Command::Worker {
            workers,
            data_dir,
            storage,
            export_retention_days,
        } => {
            let storage = open_storage(storage.as_deref(), &data_dir)?;
            let retention = export_retention_days.map(days);
            serve::worker(&url, &storage, workers, &data_dir, retention).await?
        }
        Command::Migrate => {
            let pool = crate::config::connect(&url, 2).await?;
            crate::config::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::User {
            command: UserCommand::Add { email, role },
        } => accounts::add_user(&url, &email, role).await?,
        Command::Token {
            command: TokenCommand::Create { email, name },
        } => accounts::create_token(&url, &email, &name).await?,
        Command::Import { campaign, file } => import::import(&url, campaign, &file).await?,
        Command::Export(args) => {
            let pool = crate::config::connect(&url, 2).await?;
            crate::config::migrate(&pool).await?;
            export::cli(&pool, args).await?;
        }
        Command::Generate(_)
        | Command::Model { .. }
        | Command::TrainReward(_)
        | Command::Reward(_)
        | Command::Dpo(_)
        | Command::TrainRun => {
            unreachable!("handled before the database is needed")
        }
    }
    Ok(())
}

/// The configured storage, or the data folder.
fn open_storage(
    location: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<storage::Storage> {
    match location {
        Some(location) => storage::Storage::open(location),
        None => storage::Storage::folder(data_dir),
    }
    .context("opening the storage")
}
