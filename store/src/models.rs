//! The model registry: the models generation and training can use, by name.

use domain::{ModelEntry, ModelFormat, ModelOrigin, ModelRecord, NewModel};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{rfc3339, stored, Result, StoreError};

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: Uuid,
    name: String,
    path: String,
    format: String,
    notes: String,
    parent_id: Option<Uuid>,
    stored_at: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<ModelRow> for ModelRecord {
    type Error = StoreError;

    fn try_from(row: ModelRow) -> Result<Self> {
        Ok(ModelRecord {
            id: row.id,
            name: row.name,
            path: row.path,
            format: stored(&row.format)?,
            notes: row.notes,
            parent_id: row.parent_id,
            stored_at: row.stored_at,
            created_at: rfc3339(row.created_at),
        })
    }
}

const MODEL_COLUMNS: &str = "id, name, path, format, notes, parent_id, stored_at, created_at";

/// Every model, oldest first.
pub async fn list(pool: &PgPool) -> Result<Vec<ModelRecord>> {
    let sql = format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at, name");
    sqlx::query_as::<_, ModelRow>(&sql)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(ModelRecord::try_from)
        .collect()
}

/// Every model (oldest first) with its parent's name, the run that made it and how many runs
/// started from it; files are for the caller to find.
pub async fn catalog(pool: &PgPool) -> Result<Vec<ModelEntry>> {
    #[derive(sqlx::FromRow)]
    struct CatalogRow {
        #[sqlx(flatten)]
        model: ModelRow,
        parent: Option<String>,
        run_id: Option<Uuid>,
        run_kind: Option<String>,
        run_export_id: Option<Uuid>,
        runs_from_it: i64,
    }
    let sql = "SELECT m.id, m.name, m.path, m.format, m.notes, m.parent_id, m.stored_at,
                      m.created_at, p.name AS parent, t.id AS run_id, t.kind AS run_kind,
                      t.export_id AS run_export_id,
                      (SELECT count(*) FROM training_runs b WHERE b.base_model_id = m.id)
                          AS runs_from_it
               FROM models m
               LEFT JOIN models p ON p.id = m.parent_id
               LEFT JOIN LATERAL (SELECT t.id, t.kind, t.export_id FROM training_runs t
                                  WHERE t.model_id = m.id ORDER BY t.created_at LIMIT 1) t ON true
               ORDER BY m.created_at, m.name";
    sqlx::query_as::<_, CatalogRow>(sql)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            let made_by = match (row.run_id, row.run_kind, row.run_export_id) {
                (Some(run_id), Some(kind), Some(export_id)) => Some(ModelOrigin {
                    run_id,
                    kind,
                    export_id,
                }),
                _ => None,
            };
            Ok(ModelEntry {
                model: row.model.try_into()?,
                parent: row.parent,
                made_by,
                runs_from_it: row.runs_from_it,
                files: Vec::new(),
                file_count: 0,
                bytes: 0,
                files_note: None,
            })
        })
        .collect()
}

pub async fn by_name(pool: &PgPool, name: &str) -> Result<ModelRecord> {
    let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = $1");
    sqlx::query_as::<_, ModelRow>(&sql)
        .bind(name)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("no model is named {name:?}")))?
        .try_into()
}

/// The model named, else the first registered (the default model): what a training run or a
/// generation job uses when it names none.
pub async fn named_or_default(pool: &PgPool, name: Option<&str>) -> Result<ModelRecord> {
    if let Some(name) = name {
        return by_name(pool, name).await;
    }
    let sql = format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at, name LIMIT 1");
    sqlx::query_as::<_, ModelRow>(&sql)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::Conflict("no model is registered".into()))?
        .try_into()
}

/// Registers a model; the caller checked that the path exists on this host.
pub async fn create(pool: &PgPool, actor: Option<Uuid>, new: NewModel) -> Result<ModelRecord> {
    let new = new.validated()?;
    let parent = match &new.parent {
        Some(name) => Some(by_name(pool, name).await?.id),
        None => None,
    };
    let id = Uuid::now_v7();
    let format: ModelFormat = new.format();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO models (id, name, path, format, notes, parent_id, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
    )
    .bind(id)
    .bind(&new.name)
    .bind(&new.path)
    .bind(format.as_str())
    .bind(&new.notes)
    .bind(parent)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "a model named {:?} exists",
            new.name
        )));
    }
    crate::audit(
        &mut tx,
        actor,
        "model.create",
        &id.to_string(),
        serde_json::json!({ "name": new.name, "path": new.path }),
    )
    .await?;
    tx.commit().await?;
    let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1");
    sqlx::query_as::<_, ModelRow>(&sql)
        .bind(id)
        .fetch_one(pool)
        .await?
        .try_into()
}

/// Registers the default model on an empty registry, so generation works out of the box.
pub async fn ensure_default(pool: &PgPool, name: &str, path: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO models (id, name, path, format, notes)
         SELECT $1, $2, $3, $4, 'the default model, registered on first start'
         WHERE NOT EXISTS (SELECT 1 FROM models)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(path)
    .bind(if path.to_ascii_lowercase().ends_with(".gguf") {
        "gguf"
    } else {
        "hf"
    })
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
