//! Streaming import of prompts with responses into labeling items, all-or-nothing.
//!
//! The caller parses its input line by line and feeds [`Importer`]; rows go to PostgreSQL in
//! batches inside one transaction, so memory stays flat however long the file is, and any bad
//! line rolls the whole import back.

use std::collections::HashSet;

use domain::{CampaignStatus, Gold, ImportItem, ImportReport};
use futures::StreamExt;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::io::AsyncRead;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use uuid::Uuid;

use crate::{stored, Result, StoreError};

const BATCH_LINES: usize = 500;

/// Gold items are shown to every labeler once, whatever the overlap.
pub const GOLD_SLOTS: i32 = 1_000_000;

pub struct Importer {
    tx: Transaction<'static, Postgres>,
    campaign_id: Uuid,
    overlap: i32,
    batch: Vec<(u64, ImportItem)>,
    ids: LineIds,
    report: ImportReport,
}

/// The `id`s of an import's lines: a line whose id is already in the campaign, or came
/// earlier in the same input, is skipped, so that importing a file twice adds nothing twice.
#[derive(Default)]
pub(crate) struct LineIds {
    seen: HashSet<String>,
}

impl LineIds {
    /// Which of `ids` (one per line; `None` for a line without one) to skip. Imports into one
    /// campaign run one at a time (they lock its row), so nothing slips in between.
    pub(crate) async fn repeated(
        &mut self,
        conn: &mut PgConnection,
        campaign_id: Uuid,
        ids: &[Option<&Value>],
    ) -> Result<Vec<bool>> {
        let asked: Vec<&Value> = ids.iter().flatten().copied().collect();
        if asked.is_empty() {
            return Ok(vec![false; ids.len()]);
        }
        // Compared as jsonb (where 1 and 1.0 are the same id), by position in `asked`.
        let stored: Vec<i64> = sqlx::query_scalar(
            "SELECT u.n FROM UNNEST($2::jsonb[]) WITH ORDINALITY AS u(id, n)
             WHERE EXISTS (SELECT 1 FROM prompts p
                           WHERE p.campaign_id = $1 AND p.metadata ? 'id' AND p.metadata->'id' = u.id)",
        )
        .bind(campaign_id)
        .bind(&asked)
        .fetch_all(conn)
        .await?;
        let stored: HashSet<usize> = stored.into_iter().map(|n| n as usize - 1).collect();
        let mut position = 0;
        Ok(ids
            .iter()
            .map(|id| {
                let Some(id) = id else { return false };
                let already = stored.contains(&position);
                position += 1;
                // Earlier in this input (this import's own lines are in its transaction, so
                // earlier batches are found above; this catches the same batch).
                let repeated = !self.seen.insert(id.to_string());
                already || repeated
            })
            .collect())
    }
}

/// Locks a campaign that is not closed against other imports for the rest of `tx`; judgments
/// (which only take a key-share lock through their foreign keys) go on meanwhile.
pub(crate) async fn lock_open_campaign(tx: &mut PgConnection, campaign_id: Uuid) -> Result<i32> {
    let (status, overlap): (String, i32) =
        sqlx::query_as("SELECT status, overlap FROM campaigns WHERE id = $1 FOR NO KEY UPDATE")
            .bind(campaign_id)
            .fetch_optional(tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    if stored::<CampaignStatus>(&status)? == CampaignStatus::Closed {
        return Err(StoreError::Conflict("the campaign is closed".into()));
    }
    Ok(overlap)
}

impl Importer {
    /// Starts an import into a campaign that is not closed.
    pub async fn begin(pool: &PgPool, campaign_id: Uuid) -> Result<Self> {
        let mut tx = pool.begin().await?;
        let overlap = lock_open_campaign(&mut tx, campaign_id).await?;
        Ok(Self {
            tx,
            campaign_id,
            overlap,
            batch: Vec::with_capacity(BATCH_LINES),
            ids: LineIds::default(),
            report: ImportReport::default(),
        })
    }

    /// Adds a valid line. Once any line failed, lines are only counted, never written.
    pub async fn add(&mut self, line: u64, item: ImportItem) -> Result<()> {
        if self.report.error_count > 0 {
            return Ok(());
        }
        self.batch.push((line, item));
        if self.batch.len() >= BATCH_LINES {
            self.flush().await?;
        }
        Ok(())
    }

    pub fn reject(&mut self, line: u64, message: impl Into<String>) {
        self.batch.clear();
        self.report.record_error(line, message);
    }

    /// Commits when every line was valid; otherwise rolls back and reports the errors.
    pub async fn finish(mut self) -> Result<ImportReport> {
        if self.report.error_count > 0 {
            self.tx.rollback().await?;
            self.report.discard();
            return Ok(self.report);
        }
        self.flush().await?;
        if self.report.imported == 0 && self.report.skipped == 0 {
            self.report.record_error(0, "the input holds no items");
            self.tx.rollback().await?;
            return Ok(self.report);
        }
        self.tx.commit().await?;
        Ok(self.report)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<Option<&Value>> = self
            .batch
            .iter()
            .map(|(_, i)| i.metadata.get("id"))
            .collect();
        let repeated = self
            .ids
            .repeated(&mut self.tx, self.campaign_id, &ids)
            .await?;
        let mut batch = Vec::with_capacity(self.batch.len());
        for ((line, item), skip) in self.batch.drain(..).zip(repeated) {
            match item.metadata.get("id").filter(|_| skip) {
                Some(id) => self.report.record_skipped(line, id),
                None => batch.push((line, item)),
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut prompt_ids = Vec::new();
        let mut prompt_messages = Vec::new();
        let mut prompt_metadata = Vec::new();
        let mut prompt_gold = Vec::new();
        let mut prompt_lines = Vec::new();
        let mut cand_ids = Vec::new();
        let mut cand_prompts = Vec::new();
        let mut cand_positions = Vec::new();
        let mut cand_texts = Vec::new();
        let mut cand_metadata = Vec::new();
        let mut item_ids = Vec::new();
        let mut item_prompts = Vec::new();
        let mut item_a = Vec::new();
        let mut item_b = Vec::new();
        let mut item_gold = Vec::new();
        let mut item_slots = Vec::new();
        for (line, item) in batch {
            let prompt_id = Uuid::now_v7();
            let (pairs, identical) = item.pairs();
            self.report.identical_pairs += identical;
            // Random ids: labelers see them, and time-ordered ones would tell the file's order.
            let ids: Vec<Uuid> = item.responses.iter().map(|_| Uuid::new_v4()).collect();
            for (position, (response, id)) in item.responses.into_iter().zip(&ids).enumerate() {
                cand_ids.push(*id);
                cand_prompts.push(prompt_id);
                cand_positions.push(position as i32);
                cand_texts.push(response.text);
                cand_metadata.push(serde_json::Value::Object(response.metadata));
            }
            let gold = item.gold.is_some();
            for (i, j) in pairs {
                item_ids.push(Uuid::now_v7());
                item_prompts.push(prompt_id);
                item_a.push(ids[i]);
                item_b.push(ids[j]);
                item_gold.push(gold);
                item_slots.push(if gold { GOLD_SLOTS } else { self.overlap });
            }
            prompt_ids.push(prompt_id);
            prompt_messages.push(serde_json::to_value(&item.messages).unwrap_or_default());
            prompt_metadata.push(serde_json::Value::Object(item.metadata));
            prompt_gold.push(
                item.gold
                    .map(|g: Gold| serde_json::to_value(g).unwrap_or_default()),
            );
            prompt_lines.push(i32::try_from(line).unwrap_or(i32::MAX));
        }
        sqlx::query(
            "INSERT INTO prompts (id, campaign_id, messages, metadata, gold, source_line)
             SELECT u.id, $1, u.messages, u.metadata, u.gold, u.line
             FROM UNNEST($2::uuid[], $3::jsonb[], $4::jsonb[], $5::jsonb[], $6::int[])
                  AS u(id, messages, metadata, gold, line)",
        )
        .bind(self.campaign_id)
        .bind(&prompt_ids)
        .bind(&prompt_messages)
        .bind(&prompt_metadata)
        .bind(&prompt_gold)
        .bind(&prompt_lines)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO candidates (id, prompt_id, position, text, metadata)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[])",
        )
        .bind(&cand_ids)
        .bind(&cand_prompts)
        .bind(&cand_positions)
        .bind(&cand_texts)
        .bind(&cand_metadata)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO items (id, campaign_id, prompt_id, candidate_ids, is_gold, remaining)
             SELECT u.id, $1, u.prompt_id, ARRAY[u.a, u.b], u.gold, u.slots
             FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::bool[], $7::int[])
                  WITH ORDINALITY AS u(id, prompt_id, a, b, gold, slots, n)
             ORDER BY u.n",
        )
        .bind(self.campaign_id)
        .bind(&item_ids)
        .bind(&item_prompts)
        .bind(&item_a)
        .bind(&item_b)
        .bind(&item_gold)
        .bind(&item_slots)
        .execute(&mut *self.tx)
        .await?;
        self.report.imported += prompt_ids.len() as u64;
        self.report.items += item_ids.len() as u64;
        Ok(())
    }
}

/// Longest accepted line: one prompt with up to eight 1 MiB responses, JSON-escaped.
pub const MAX_LINE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = domain::Invalid;

    /// The name a form or a flag gives: `jsonl` or `csv`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(domain::Invalid(format!(
                "unknown import format {other:?}: use jsonl or csv"
            ))),
        }
    }
}

impl Format {
    /// From a Content-Type or a file name; JSONL unless it says CSV.
    pub fn guess(hint: &str) -> Self {
        let hint = hint.to_ascii_lowercase();
        if hint.contains("csv") {
            Format::Csv
        } else {
            Format::Jsonl
        }
    }
}

/// Reads the whole input, validating every line; writes only if all are valid.
pub async fn import_reader<R: AsyncRead + Unpin + Send>(
    pool: &PgPool,
    campaign_id: Uuid,
    format: Format,
    reader: R,
) -> Result<ImportReport> {
    let mut importer = Importer::begin(pool, campaign_id).await?;
    match format {
        Format::Jsonl => {
            let mut lines =
                FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
            let mut number = 0u64;
            while let Some(line) = lines.next().await {
                number += 1;
                match line {
                    Ok(line) if line.trim().is_empty() => {}
                    Ok(line) => match domain::parse_jsonl_line(&line) {
                        Ok(item) => importer.add(number, item).await?,
                        Err(e) => importer.reject(number, e.0),
                    },
                    Err(LinesCodecError::MaxLineLengthExceeded) => {
                        importer.reject(
                            number,
                            format!("line is longer than {MAX_LINE_BYTES} bytes"),
                        );
                    }
                    Err(LinesCodecError::Io(e)) => return Err(read_error(e)),
                }
            }
        }
        Format::Csv => {
            let mut csv = csv_async::AsyncReaderBuilder::new()
                .flexible(true)
                .create_reader(reader);
            let header: Vec<String> = csv
                .headers()
                .await
                .map_err(csv_error)?
                .iter()
                .map(str::to_string)
                .collect();
            let layout = domain::CsvLayout::from_header(&header)?;
            let mut records = csv.records();
            while let Some(record) = records.next().await {
                let record = record.map_err(csv_error)?;
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let cells: Vec<&str> = record.iter().collect();
                match layout.parse_record(&cells) {
                    Ok(item) => importer.add(line, item).await?,
                    Err(e) => importer.reject(line, e.0),
                }
            }
        }
    }
    importer.finish().await
}

/// A reader failure: the upload broke off or went over the server's size limit.
fn read_error(e: std::io::Error) -> StoreError {
    StoreError::Input(e)
}

fn csv_error(e: csv_async::Error) -> StoreError {
    match e.into_kind() {
        csv_async::ErrorKind::Io(io) => read_error(io),
        other => StoreError::Invalid(domain::Invalid(format!("invalid CSV: {other:?}"))),
    }
}
