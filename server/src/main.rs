//! `pairwise`: the server and its command-line tools.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use domain::Role;
use server::{auth, bench, config, telemetry, web, AppState};

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
        /// E-mail of the admin created on first start, when no user exists yet.
        #[arg(long, env = "PAIRWISE_ADMIN_EMAIL", default_value = "admin@localhost")]
        admin_email: String,
        #[arg(long, env = "PAIRWISE_DB_POOL", default_value_t = 16)]
        pool_size: u32,
        /// Folder with the built site (`pkg/`, assets), as cargo-leptos writes it.
        #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
        site_root: String,
        /// Folder for export files.
        #[arg(long, env = "PAIRWISE_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
        /// Generation workers inside the server (0: only `pairwise worker` processes generate).
        #[arg(long, env = "PAIRWISE_WORKERS", default_value_t = 1)]
        workers: usize,
    },
    /// Run generation workers (for GPU hosts) against the same database as the servers.
    Worker {
        #[arg(long, env = "PAIRWISE_WORKERS", default_value_t = 1)]
        workers: usize,
        /// Folder for trained checkpoints (`models/`); exports are read where the server wrote them.
        #[arg(long, env = "PAIRWISE_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
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
    Export(server::export::ExportArgs),
    /// Generate candidates with the model engine.
    Generate(server::generate::GenerateArgs),
    /// Train a reward model (Bradley–Terry, scalar head) on preference pairs.
    TrainReward(server::train::TrainRewardArgs),
    /// Score a response with a reward model.
    Reward(server::train::RewardArgs),
    /// Fine-tune a model with DPO on preference pairs.
    Dpo(server::train::DpoArgs),
    /// Model facts.
    Model {
        #[command(subcommand)]
        command: server::generate::ModelCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_logging();
    match cli.command {
        Command::Generate(args) => return server::generate::generate(args),
        Command::Model { command } => return server::generate::model(command),
        Command::TrainReward(args) => return server::train::train_reward(args),
        Command::Reward(args) => return server::train::reward(args),
        Command::Dpo(args) => return server::train::dpo(args),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Bench { command } = cli.command {
        return bench::run(command, cli.database_url).await;
    }
    let Some(url) = cli.database_url else {
        bail!("set PAIRWISE_DATABASE_URL (or --database-url) to a PostgreSQL URL");
    };
    match cli.command {
        Command::Serve {
            addr,
            secure_cookies,
            admin_email,
            pool_size,
            site_root,
            data_dir,
            workers,
        } => {
            let pool = config::connect(&url, pool_size).await?;
            config::migrate(&pool).await?;
            bootstrap_admin(&pool, &admin_email).await?;
            let abandoned =
                store::export::fail_abandoned(&pool, server::export::ABANDONED_AFTER_SECONDS)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            if abandoned > 0 {
                tracing::warn!(
                    "{abandoned} exports were interrupted by a stop and are marked failed"
                );
            }
            register_default_model(&pool).await?;
            let stop_workers = server::worker::spawn_workers(&pool, workers, &data_dir);
            let state = AppState {
                access: store::access_cache::AccessCache::listen(&pool),
                pool,
                leptos_options: web::leptos_options(addr, &site_root),
                metrics: telemetry::metrics(),
                secure_cookies,
                data_dir,
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!("Pairwise is serving on http://{addr}");
            web::serve(listener, state).await?;
            let _ = stop_workers.send(true);
        }
        Command::Worker { workers, data_dir } => {
            let pool = config::connect(&url, (workers as u32 + 1).max(2)).await?;
            config::migrate(&pool).await?;
            let stop = server::worker::spawn_workers(&pool, workers.max(1), &data_dir);
            tracing::info!(
                "{} generation workers running; Ctrl-C or SIGTERM stops them",
                workers.max(1)
            );
            web::shutdown_signal().await;
            let _ = stop.send(true);
        }
        Command::Migrate => {
            let pool = config::connect(&url, 2).await?;
            config::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::User {
            command: UserCommand::Add { email, role },
        } => {
            let pool = config::connect(&url, 2).await?;
            config::migrate(&pool).await?;
            let password = read_password()?;
            let hash = auth::hash_password(password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = store::accounts::create_user(&pool, None, &email, role, Some(&hash))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {role} {} ({id})", email.trim().to_lowercase());
        }
        Command::Token {
            command: TokenCommand::Create { email, name },
        } => {
            let pool = config::connect(&url, 2).await?;
            let token = store::accounts::create_api_token(&pool, &email, &name)
                .await
                .map_err(|e| match e {
                    store::StoreError::NotFound => {
                        anyhow::anyhow!("no enabled user has the e-mail {email}")
                    }
                    other => anyhow::anyhow!("{other}"),
                })?;
            println!("API token for {email} (shown once): {token}");
        }
        Command::Import { campaign, file } => {
            let pool = config::connect(&url, 2).await?;
            let format = store::import::Format::guess(&file.to_string_lossy());
            let reader = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let report = store::import::import_reader(
                &pool,
                campaign,
                format,
                tokio::io::BufReader::new(reader),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.error_count > 0 {
                bail!("{} invalid lines; nothing was imported", report.error_count);
            }
        }
        Command::Export(args) => {
            let pool = config::connect(&url, 2).await?;
            config::migrate(&pool).await?;
            server::export::cli(&pool, args).await?;
        }
        Command::Bench { .. }
        | Command::Generate(_)
        | Command::Model { .. }
        | Command::TrainReward(_)
        | Command::Reward(_)
        | Command::Dpo(_) => {
            unreachable!("handled before the database is needed")
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("PAIRWISE_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set PAIRWISE_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}

/// Registers the default model (when its file is here) on an empty registry.
async fn register_default_model(pool: &store::PgPool) -> anyhow::Result<()> {
    let path = engine::default_model_path();
    if !path.is_file() {
        tracing::info!(
            "no default model at {} (run scripts/fetch-model.sh); register models under /api/v1/models",
            path.display()
        );
        return Ok(());
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    if store::jobs::ensure_default_model(pool, &name, &path.to_string_lossy())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        tracing::info!("registered the default model {name}");
    }
    Ok(())
}

/// On an empty database, creates the first admin with a generated password and prints it
/// once. There is no default password.
async fn bootstrap_admin(pool: &store::PgPool, email: &str) -> anyhow::Result<()> {
    if store::accounts::count_users(pool)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        > 0
    {
        return Ok(());
    }
    let password = auth::generate_password();
    let hash = auth::hash_password(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store::accounts::create_user(pool, None, email, Role::Admin, Some(&hash))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n  First start: created the admin account.\n  Log in at the address below as\n    e-mail:   {email}\n    password: {password}\n  (shown only now; create more users under Users once logged in)\n");
    Ok(())
}
