//! Writes preference datasets: rows stream from PostgreSQL into a bounded channel, and a
//! blocking writer thread aggregates them, serialises JSONL (optionally gzip) or Parquet,
//! hashes the bytes as they are written and finally writes the dataset card. Memory stays flat
//! however many judgments there are.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use domain::{
    judge_item, CardFacts, DropReason, ExportCounts, ExportFile, ExportFormat, ExportSpec,
    FileType, PairColumn, PairRecord, PairRow, RawJudgment, Split,
};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};
use store::export::ItemVotes;
use store::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows handed from the database reader to the writer thread at a time.
const CHUNK_ROWS: usize = 512;
/// Rows per Arrow batch, and the most encoded bytes a Parquet row group may buffer.
const ARROW_BATCH_ROWS: usize = 4096;
const ROW_GROUP_BYTES: usize = 64 << 20;

/// The file name of the dataset card.
pub const CARD_NAME: &str = "README.md";

/// Where and how an export reports progress.
pub struct Report<'a> {
    pub pool: &'a PgPool,
    /// The `exports` row to update, when the export is recorded.
    pub record: Option<Record<'a>>,
}

/// A recorded export and the worker that holds its lease.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub id: Uuid,
    pub worker: &'a str,
}

/// Writes one export into `dir` (created if missing), reporting progress to its record if it
/// has one. Files appear under their final names only when complete. Returns the data files
/// and the card, and the counts the card reports.
pub async fn run(
    report: Report<'_>,
    spec: &ExportSpec,
    dir: &Path,
) -> anyhow::Result<(Vec<ExportFile>, ExportCounts)> {
    let pool = report.pool;
    let campaigns = store::export::campaign_names(pool, &spec.campaigns)
        .await
        .context("looking up the campaigns")?;
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(Record { id, worker }) = report.record {
        let total = store::export::estimate_total(pool, spec)
            .await
            .context("estimating the rows")?;
        store::export::start(pool, id, worker, total)
            .await
            .context("marking the export started")?;
    }

    let (sender, receiver) = mpsc::channel::<Chunk>(4);
    let writer_spec = spec.clone();
    let writer_dir = dir.to_path_buf();
    let writer =
        tokio::task::spawn_blocking(move || write_files(&writer_spec, &writer_dir, receiver));

    let read = read_rows(&report, spec, sender).await;
    // The writer ends when the channel closes; its error explains a failed send best.
    let written = writer.await.context("the export writer stopped")?;
    read?;
    let (mut files, counts) = written?;

    let facts = CardFacts {
        title: &card_title(&campaigns),
        campaigns: &campaigns,
        spec,
        files: &files,
        counts: &counts,
        created_at: chrono::Utc::now(),
        features_yaml: &features_yaml(&arrow_schema(spec)),
    };
    let card = domain::dataset_card(&facts);
    let card_path = dir.join(CARD_NAME);
    tokio::fs::write(&card_path, card.as_bytes())
        .await
        .with_context(|| format!("cannot write {}", card_path.display()))?;
    files.push(ExportFile {
        name: CARD_NAME.into(),
        rows: 0,
        bytes: card.len() as u64,
        sha256: hex::encode(Sha256::digest(card.as_bytes())),
    });
    Ok((files, counts))
}

fn card_title(campaigns: &[(Uuid, String)]) -> String {
    let names: Vec<&str> = campaigns.iter().map(|(_, n)| n.as_str()).collect();
    format!("Preferences from {}", names.join(", "))
}

enum Chunk {
    Items(Vec<ItemVotes>),
    Raw(Vec<RawJudgment>),
}

/// Streams the rows into the channel, reporting progress about once a second.
async fn read_rows(
    report: &Report<'_>,
    spec: &ExportSpec,
    sender: mpsc::Sender<Chunk>,
) -> anyhow::Result<()> {
    let mut done = 0u64;
    let mut last_report = Instant::now();
    let closed = || anyhow!("the export writer stopped early");
    macro_rules! pump {
        ($stream:expr, $variant:ident) => {{
            let mut stream = $stream;
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            while let Some(row) = stream.next().await {
                chunk.push(row.context("reading from the database")?);
                if chunk.len() == CHUNK_ROWS {
                    done += chunk.len() as u64;
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    sender
                        .send(Chunk::$variant(full))
                        .await
                        .map_err(|_| closed())?;
                    if last_report.elapsed() >= Duration::from_secs(1) {
                        last_report = Instant::now();
                        if let Some(Record { id, worker }) = report.record {
                            store::export::progress(report.pool, id, worker, done)
                                .await
                                .context("recording progress")?;
                        }
                    }
                }
            }
            if !chunk.is_empty() {
                sender
                    .send(Chunk::$variant(chunk))
                    .await
                    .map_err(|_| closed())?;
            }
        }};
    }
    if spec.format == ExportFormat::Raw {
        pump!(store::export::raw_judgments(report.pool, spec), Raw);
    } else {
        pump!(store::export::item_votes(report.pool, spec), Items);
    }
    Ok(())
}

/// Counts the bytes written through it and hashes them.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Hashing<File> {
    fn create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            inner: File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn finish(mut self) -> anyhow::Result<(String, u64)> {
        self.inner.flush()?;
        self.inner.sync_all()?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

enum Output {
    Jsonl(BufWriter<Hashing<File>>),
    JsonlGz(BufWriter<flate2::write::GzEncoder<Hashing<File>>>),
    Parquet {
        writer: ArrowWriter<Hashing<File>>,
        decoder: Box<Decoder>,
        pending: usize,
    },
}

/// One output file being written (a split).
struct Sink {
    name: String,
    partial: PathBuf,
    path: PathBuf,
    rows: u64,
    output: Output,
    line: Vec<u8>,
}

impl Sink {
    fn create(dir: &Path, name: String, spec: &ExportSpec) -> anyhow::Result<Self> {
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}.partial"));
        let file = Hashing::create(&partial)?;
        let output = match (spec.file_type, spec.gzip) {
            (FileType::Jsonl, false) => Output::Jsonl(BufWriter::with_capacity(1 << 20, file)),
            (FileType::Jsonl, true) => Output::JsonlGz(BufWriter::with_capacity(
                1 << 20,
                flate2::write::GzEncoder::new(file, flate2::Compression::default()),
            )),
            (FileType::Parquet, _) => {
                let schema = arrow_schema(spec);
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
                    .context("starting the Parquet file")?;
                let decoder = ReaderBuilder::new(schema)
                    .with_batch_size(ARROW_BATCH_ROWS)
                    .build_decoder()
                    .context("building the Arrow row decoder")?;
                Output::Parquet {
                    writer,
                    decoder: Box::new(decoder),
                    pending: 0,
                }
            }
        };
        Ok(Self {
            name,
            partial,
            path,
            rows: 0,
            output,
            line: Vec::with_capacity(4096),
        })
    }

    fn write<S: serde::Serialize>(&mut self, row: &S) -> anyhow::Result<()> {
        self.rows += 1;
        match &mut self.output {
            Output::Jsonl(out) => {
                write_line(&mut self.line, row)?;
                out.write_all(&self.line)?;
            }
            Output::JsonlGz(out) => {
                write_line(&mut self.line, row)?;
                out.write_all(&self.line)?;
            }
            Output::Parquet {
                writer,
                decoder,
                pending,
            } => {
                decoder
                    .serialize(std::slice::from_ref(row))
                    .context("converting a row to Arrow")?;
                *pending += 1;
                if *pending >= ARROW_BATCH_ROWS {
                    flush_batch(writer, decoder)?;
                    *pending = 0;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<ExportFile> {
        let (sha256, bytes) = match self.output {
            Output::Jsonl(out) => out.into_inner().map_err(|e| e.into_error())?.finish()?,
            Output::JsonlGz(out) => out
                .into_inner()
                .map_err(|e| e.into_error())?
                .finish()?
                .finish()?,
            Output::Parquet {
                mut writer,
                mut decoder,
                ..
            } => {
                flush_batch(&mut writer, &mut decoder)?;
                writer
                    .into_inner()
                    .context("finishing the Parquet file")?
                    .finish()?
            }
        };
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("cannot move the finished {} in place", self.name))?;
        Ok(ExportFile {
            name: self.name,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

fn write_line<S: serde::Serialize>(line: &mut Vec<u8>, row: &S) -> anyhow::Result<()> {
    line.clear();
    serde_json::to_writer(&mut *line, row)?;
    line.push(b'\n');
    Ok(())
}

fn flush_batch(
    writer: &mut ArrowWriter<Hashing<File>>,
    decoder: &mut Decoder,
) -> anyhow::Result<()> {
    if let Some(batch) = decoder.flush().context("building an Arrow batch")? {
        writer.write(&batch).context("writing Parquet")?;
        if writer.in_progress_size() >= ROW_GROUP_BYTES {
            writer.flush().context("writing a Parquet row group")?;
        }
    }
    Ok(())
}

/// The Arrow schema of an export's rows; JSONL and Parquet hold the same fields.
pub fn arrow_schema(spec: &ExportSpec) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let maybe_text = |name: &str| Field::new(name, DataType::Utf8, true);
    let message = || {
        DataType::Struct(Fields::from(vec![
            Field::new("role", DataType::Utf8, false),
            Field::new("content", DataType::Utf8, false),
        ]))
    };
    let messages = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", message(), false))),
            false,
        )
    };
    let mut fields = Vec::new();
    match spec.format {
        ExportFormat::Trl => {
            fields.extend([text("prompt"), text("chosen"), text("rejected")]);
        }
        ExportFormat::TrlConversational => {
            fields.extend([messages("prompt"), messages("chosen"), messages("rejected")]);
        }
        ExportFormat::HhRlhf => fields.extend([text("chosen"), text("rejected")]),
        ExportFormat::Raw => {
            fields.extend([
                text("judgment_id"),
                text("campaign_id"),
                text("item_id"),
                text("prompt_id"),
                text("labeler"),
                text("created_at"),
                text("choice"),
                maybe_text("chosen_candidate_id"),
                Field::new(
                    "shown_order",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                    false,
                ),
                Field::new("strength", DataType::Int32, true),
                maybe_text("rationale"),
                Field::new("time_on_task_ms", DataType::Int32, true),
                Field::new("is_gold", DataType::Boolean, false),
                messages("prompt"),
                text("first_candidate_id"),
                text("first_text"),
                text("first_metadata"),
                text("second_candidate_id"),
                text("second_text"),
                text("second_metadata"),
            ]);
            return Arc::new(Schema::new(fields));
        }
    }
    if domain::has_outcome_column(spec) {
        fields.push(text("outcome"));
    }
    for column in &spec.columns {
        fields.push(match column {
            PairColumn::Margin => Field::new("margin", DataType::Float64, true),
            PairColumn::Agreement => Field::new("agreement", DataType::Float64, false),
            PairColumn::NJudgments => Field::new("n_judgments", DataType::Int64, false),
            PairColumn::PromptId | PairColumn::ItemId => text(column.as_str()),
            PairColumn::ChosenModel | PairColumn::RejectedModel => maybe_text(column.as_str()),
        });
    }
    Arc::new(Schema::new(fields))
}

/// The Hugging Face `datasets` feature list of a schema, as dataset-card YAML.
pub fn features_yaml(schema: &Schema) -> String {
    fn feature(out: &mut String, indent: usize, name: &str, data_type: &DataType) {
        let pad = " ".repeat(indent);
        out.push_str(&format!("{pad}- name: {name}\n"));
        match data_type {
            DataType::List(item) => match item.data_type() {
                DataType::Struct(fields) => {
                    out.push_str(&format!("{pad}  list:\n"));
                    for field in fields {
                        feature(out, indent + 2, field.name(), field.data_type());
                    }
                }
                other => out.push_str(&format!("{pad}  list: {}\n", dtype(other))),
            },
            other => out.push_str(&format!("{pad}  dtype: {}\n", dtype(other))),
        }
    }
    fn dtype(data_type: &DataType) -> &'static str {
        match data_type {
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::Float64 => "float64",
            DataType::Boolean => "bool",
            _ => "string",
        }
    }
    let mut out = String::new();
    for field in schema.fields() {
        feature(&mut out, 2, field.name(), field.data_type());
    }
    out
}

/// The writer thread: aggregates, splits, serialises and hashes.
fn write_files(
    spec: &ExportSpec,
    dir: &Path,
    mut receiver: mpsc::Receiver<Chunk>,
) -> anyhow::Result<(Vec<ExportFile>, ExportCounts)> {
    let splits = spec.splits();
    let mut sinks = splits
        .iter()
        .zip(spec.file_names())
        .map(|(split, name)| Ok((*split, Sink::create(dir, name, spec)?)))
        .collect::<anyhow::Result<Vec<(Split, Sink)>>>()?;
    let mut counts = ExportCounts::default();
    let mut last_prompt: Option<Uuid> = None;
    let sink_for = |split: Split| -> usize { splits.iter().position(|s| *s == split).unwrap_or(0) };
    while let Some(chunk) = receiver.blocking_recv() {
        match chunk {
            Chunk::Items(items) => {
                for item in items {
                    counts.items_seen += 1;
                    let split = spec.split_of(item.prompt_id);
                    // Items made before identical pairs were left out may still hold one.
                    if domain::same_response(&item.first_text, &item.second_text) {
                        counts.dropped(DropReason::IdenticalResponses);
                        continue;
                    }
                    let verdict = match judge_item(spec, &item.votes) {
                        Ok(verdict) => verdict,
                        Err(reason) => {
                            counts.dropped(reason);
                            continue;
                        }
                    };
                    counts.positions(item.left_wins, item.decisive);
                    // Items come grouped by prompt.
                    if last_prompt != Some(item.prompt_id) {
                        counts.prompt(split);
                        last_prompt = Some(item.prompt_id);
                    }
                    let record = PairRecord::new(
                        item.prompt_id,
                        item.item_id,
                        item.messages,
                        (item.first_text, item.first_model),
                        (item.second_text, item.second_model),
                        verdict,
                        item.votes.total(),
                    );
                    counts.row(split, &verdict, item.votes.total());
                    let index = sink_for(split);
                    sinks[index].1.write(&PairRow {
                        spec,
                        record: &record,
                    })?;
                }
            }
            Chunk::Raw(judgments) => {
                for judgment in judgments {
                    let split = spec.split_of(judgment.prompt_id);
                    match judgment.choice.as_str() {
                        "a" => counts.positions(1, 1),
                        "b" => counts.positions(0, 1),
                        _ => {}
                    }
                    counts.raw_row(split);
                    let index = sink_for(split);
                    sinks[index].1.write(&judgment)?;
                }
            }
        }
    }
    let files = sinks
        .into_iter()
        .map(|(_, sink)| sink.finish())
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((files, counts))
}

/// How long a claimed export stays its worker's without a renewal, and how often it renews.
pub const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Where a leased export's files go: into the storage (through a local scratch folder,
/// removed after), or into a folder of the caller's choice (`pairwise export`).
pub enum Destination<'a> {
    Storage {
        storage: &'a storage::Storage,
        key: &'a str,
        scratch: &'a Path,
    },
    Folder(&'a Path),
}

/// Runs an export that `worker` holds the lease of to its end, renewing the lease, and records
/// its files once they are where they belong; a failure lands in the record.
pub async fn run_leased(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    spec: &ExportSpec,
    destination: Destination<'_>,
) -> anyhow::Result<(Vec<ExportFile>, ExportCounts)> {
    let renewal = {
        let (pool, worker) = (pool.clone(), worker.to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match store::export::renew(&pool, id, &worker, LEASE).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!("export {id}: renewing the lease: {e}"),
                }
            }
        })
    };
    let record = Record { id, worker };
    let result = write_leased(pool, record, spec, &destination).await;
    renewal.abort();
    if let Destination::Storage { scratch, .. } = destination {
        if let Err(e) = tokio::fs::remove_dir_all(scratch).await {
            tracing::warn!("export {id}: cannot remove {}: {e}", scratch.display());
        }
    }
    if let Err(e) = &result {
        tracing::error!("export {id} failed: {e:#}");
        if let Err(e) = store::export::fail(pool, id, worker, &format!("{e:#}")).await {
            tracing::error!("export {id}: cannot record the failure: {e}");
        }
    }
    result
}

async fn write_leased(
    pool: &PgPool,
    record: Record<'_>,
    spec: &ExportSpec,
    destination: &Destination<'_>,
) -> anyhow::Result<(Vec<ExportFile>, ExportCounts)> {
    let dir = match destination {
        Destination::Storage { scratch, .. } => scratch,
        Destination::Folder(dir) => dir,
    };
    let report = Report {
        pool,
        record: Some(record),
    };
    let (files, counts) = run(report, spec, dir).await?;
    // Renewing is also the check that the export is still this worker's: once cancelled or
    // taken over, its files (if any) are another worker's to store.
    let still_ours = store::export::renew(pool, record.id, record.worker, LEASE)
        .await
        .context("renewing the lease")?;
    if !still_ours {
        bail!("the export is no longer this worker's (cancelled or taken over)");
    }
    if let Destination::Storage { storage, key, .. } = destination {
        storage
            .upload_dir(dir, key)
            .await
            .with_context(|| format!("storing the files in {}", storage.location()))?;
    }
    let recorded = store::export::finish(pool, record.id, record.worker, &files, &counts)
        .await
        .context("recording the finished export")?;
    if !recorded {
        bail!("the export is no longer this worker's (taken over or failed)");
    }
    Ok((files, counts))
}
