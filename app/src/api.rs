//! Server functions behind the UI, and the view types they return. Each one is an adapter
//! like a JSON API handler: it resolves the caller from the request (the server's auth
//! middleware put it there), parses the form fields, calls the operation in `ops` (which
//! checks who may do it) and renders what the page shows.
// Server functions take one argument per form field, so the forms post plain fields.
#![allow(clippy::too_many_arguments)]

use domain::{
    Campaign, CampaignStats, CampaignStatus, CurrentUser, ImportReport, JudgmentAck, JudgmentRules,
    Member, Outlook, Progress, UserSummary,
};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

pub use crate::errors::AppError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignView {
    pub campaign: Campaign,
    pub guidelines_html: String,
    pub can_manage: bool,
    pub can_analyse: bool,
    pub can_label: bool,
    pub members: Vec<Member>,
    pub stats: Option<CampaignStats>,
    /// The caller's own progress and what is left, when they label here.
    pub progress: Option<(Progress, Outlook)>,
}

/// A campaign in the caller's list, with whether they may label it (the list offers "Label"
/// only then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRow {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub can_label: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedMessage {
    pub role: String,
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedResponse {
    pub id: Uuid,
    pub html: String,
}

/// One item on the labeling page, markdown already rendered and sanitised on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelItem {
    pub assignment_id: Uuid,
    pub prompt: Vec<RenderedMessage>,
    pub responses: Vec<RenderedResponse>,
    pub progress: Progress,
}

/// A stored judgment and, when the campaign still hands out items, the labeler's next one
/// (stored and handed out in one transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgmentAnswer {
    pub ack: JudgmentAck,
    pub next: Option<LabelItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelContext {
    pub name: String,
    pub status: CampaignStatus,
    pub guidelines_html: String,
    pub rules: JudgmentRules,
    /// How long an answer may be changed after it is given; 0: never.
    pub undo_seconds: i32,
    pub progress: Progress,
    pub outlook: Outlook,
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use domain::CurrentUser;
    use leptos::prelude::*;

    use super::AppError;

    /// The operations, as the server provided them to every request.
    pub fn ops() -> Result<ops::Ops, AppError> {
        use_context::<ops::Ops>().ok_or(AppError::Internal)
    }

    /// The signed-in caller, as the server's auth middleware resolved them.
    pub fn caller() -> Result<CurrentUser, AppError> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<CurrentUser>().cloned())
            .ok_or(AppError::SignedOut)
    }

    /// The caller and the operations, what nearly every server function starts from.
    pub fn context() -> Result<(CurrentUser, ops::Ops), AppError> {
        Ok((caller()?, ops()?))
    }

    /// A conversation's turns, their markdown rendered and sanitised.
    pub fn render_messages(messages: &[domain::Message]) -> Vec<super::RenderedMessage> {
        messages
            .iter()
            .map(|m| super::RenderedMessage {
                role: m.role.clone(),
                html: crate::markdown::render(&m.content),
            })
            .collect()
    }

    /// An item as the labeling page shows it: markdown rendered and sanitised.
    pub fn rendered(item: domain::NextItem) -> super::LabelItem {
        super::LabelItem {
            assignment_id: item.assignment_id,
            prompt: render_messages(&item.prompt),
            responses: item
                .responses
                .iter()
                .map(|r| super::RenderedResponse {
                    id: r.id,
                    html: crate::markdown::render(&r.text),
                })
                .collect(),
            progress: item.progress,
        }
    }

    /// An operation's error as the page shows it; internal faults are logged, not shown.
    pub fn fail(e: ops::Error) -> AppError {
        e.into()
    }

    pub fn invalid(e: domain::Invalid) -> AppError {
        e.into()
    }
}

#[server(input = GetUrl)]
pub async fn whoami() -> Result<Option<CurrentUser>, AppError> {
    Ok(ssr::caller().ok())
}

#[server(input = GetUrl)]
pub async fn list_campaigns() -> Result<Vec<CampaignRow>, AppError> {
    let (user, ops) = ssr::context()?;
    let rows = ops::campaigns::list_with_rights(&ops, &user)
        .await
        .map_err(ssr::fail)?;
    Ok(rows
        .into_iter()
        .map(|(campaign, rights)| CampaignRow {
            campaign,
            can_label: rights.label,
        })
        .collect())
}

/// The option fields the new-campaign form and the settings form share, as a patch.
#[cfg(feature = "ssr")]
fn campaign_options(
    overlap: i32,
    strength_scale: i32,
    rationale: String,
    undo_minutes: f64,
    allow_tie: Option<String>,
    allow_both_bad: Option<String>,
) -> Result<domain::CampaignPatch, AppError> {
    let max_minutes = f64::from(domain::MAX_UNDO_SECONDS / 60);
    if !(0.0..=max_minutes).contains(&undo_minutes) {
        return Err(AppError::Invalid(format!(
            "answers can be changed for 0 (never) to {max_minutes} minutes"
        )));
    }
    Ok(domain::CampaignPatch {
        overlap: Some(overlap),
        strength_scale: Some(strength_scale),
        rationale: Some(rationale.parse().map_err(ssr::invalid)?),
        undo_seconds: Some((undo_minutes * 60.0).round() as i32),
        // An unticked box is not sent at all.
        allow_tie: Some(checked(allow_tie)),
        allow_both_bad: Some(checked(allow_both_bad)),
        ..Default::default()
    })
}

#[server]
pub async fn create_campaign(
    name: String,
    guidelines: String,
    overlap: i32,
    strength_scale: i32,
    rationale: String,
    undo_minutes: f64,
    allow_tie: Option<String>,
    allow_both_bad: Option<String>,
) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let mut new = domain::NewCampaign::named(name).patched(&campaign_options(
        overlap,
        strength_scale,
        rationale,
        undo_minutes,
        allow_tie,
        allow_both_bad,
    )?);
    new.guidelines = guidelines;
    let campaign = ops::campaigns::create(&ops, &user, new)
        .await
        .map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/campaigns/{}", campaign.id));
    Ok(())
}

#[server(input = GetUrl)]
pub async fn get_campaign_view(id: Uuid) -> Result<CampaignView, AppError> {
    let (user, ops) = ssr::context()?;
    let overview = ops::campaigns::overview(&ops, &user, id)
        .await
        .map_err(ssr::fail)?;
    Ok(CampaignView {
        guidelines_html: crate::markdown::render(&overview.campaign.guidelines),
        campaign: overview.campaign,
        can_manage: overview.rights.manage,
        can_analyse: overview.rights.analyse,
        can_label: overview.rights.label,
        members: overview.members,
        stats: overview.stats,
        progress: overview.progress,
    })
}

#[server]
pub async fn set_campaign_status(id: Uuid, status: String) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let patch = domain::CampaignPatch {
        status: Some(status.parse().map_err(ssr::invalid)?),
        ..Default::default()
    };
    ops::campaigns::update(&ops, &user, id, patch)
        .await
        .map_err(ssr::fail)?;
    Ok(())
}

/// The settings form: everything but the status (its own buttons) and the mode.
#[server]
pub async fn update_campaign(
    id: Uuid,
    name: String,
    guidelines: String,
    overlap: i32,
    strength_scale: i32,
    rationale: String,
    undo_minutes: f64,
    allow_tie: Option<String>,
    allow_both_bad: Option<String>,
) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let patch = domain::CampaignPatch {
        name: Some(name),
        guidelines: Some(guidelines),
        ..campaign_options(
            overlap,
            strength_scale,
            rationale,
            undo_minutes,
            allow_tie,
            allow_both_bad,
        )?
    };
    ops::campaigns::update(&ops, &user, id, patch).await?;
    Ok(())
}

#[server]
pub async fn set_campaign_archived(id: Uuid, archived: bool) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let patch = domain::CampaignPatch {
        archived: Some(archived),
        ..Default::default()
    };
    ops::campaigns::update(&ops, &user, id, patch).await?;
    Ok(())
}

/// Deletes the campaign and goes back to the list; with judgments only when the form's box
/// says to delete them too.
#[server]
pub async fn delete_campaign(id: Uuid, with_judgments: Option<String>) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::campaigns::delete(&ops, &user, id, checked(with_judgments)).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server]
pub async fn remove_member(id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::campaigns::remove_member(&ops, &user, id, user_id).await?;
    Ok(())
}

#[server]
pub async fn add_member(id: Uuid, email: String, role: String) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let role = role.parse().map_err(ssr::invalid)?;
    ops::campaigns::add_member(&ops, &user, id, domain::NewMember { email, role })
        .await
        .map_err(ssr::fail)?;
    Ok(())
}

/// Imports pasted JSONL or CSV text (large files go through the API or the CLI). The report
/// is the API's: every bad line by number, nothing imported unless all are good.
#[server]
pub async fn import_text(id: Uuid, text: String, format: String) -> Result<ImportReport, AppError> {
    let (user, ops) = ssr::context()?;
    let format: ops::imports::Format = format.parse().map_err(ssr::invalid)?;
    ops::imports::items(&ops, &user, id, format, text.as_bytes())
        .await
        .map_err(ssr::fail)
}

#[server(endpoint = "label/context")]
pub async fn get_label_context(id: Uuid) -> Result<LabelContext, AppError> {
    let (user, ops) = ssr::context()?;
    let (campaign, progress, outlook) = ops::labeling::context(&ops, &user, id)
        .await
        .map_err(ssr::fail)?;
    Ok(LabelContext {
        name: campaign.name.clone(),
        status: campaign.status,
        outlook,
        guidelines_html: crate::markdown::render(&campaign.guidelines),
        rules: campaign.judgment_rules(),
        undo_seconds: campaign.undo_seconds,
        progress,
    })
}

#[server(endpoint = "label/next")]
pub async fn next_item(id: Uuid, exclude: Option<Uuid>) -> Result<Option<LabelItem>, AppError> {
    let (user, ops) = ssr::context()?;
    let item = ops::labeling::next(&ops, &user, id, exclude)
        .await
        .map_err(ssr::fail)?;
    Ok(item.map(ssr::rendered))
}

/// Flat arguments: server functions post URL-encoded forms. Answers with the labeler's next
/// item after `reserve` (the one the page holds in reserve), so one request per item suffices.
#[server(endpoint = "label/judgment")]
pub async fn submit_judgment(
    assignment_id: Uuid,
    choice: domain::Choice,
    strength: Option<i32>,
    rationale: Option<String>,
    time_on_task_ms: Option<i32>,
    reserve: Option<Uuid>,
) -> Result<JudgmentAnswer, AppError> {
    let (user, ops) = ssr::context()?;
    // One judgment per assignment: a repeated submit of it is the same request.
    let input = domain::JudgmentInput {
        choice,
        strength,
        rationale,
        client_request_id: assignment_id.to_string(),
        time_on_task_ms,
    };
    let hand_out = ops::labeling::HandOut { exclude: reserve };
    let (ack, next) = ops::labeling::submit(&ops, &user, assignment_id, input, Some(hand_out))
        .await
        .map_err(ssr::fail)?;
    let next = next.map(ssr::rendered);
    Ok(JudgmentAnswer { ack, next })
}

/// A new answer to the labeler's last judgment, while the campaign's undo window lasts.
#[server(endpoint = "label/revise")]
pub async fn revise_judgment(
    judgment_id: Uuid,
    choice: domain::Choice,
    strength: Option<i32>,
    rationale: Option<String>,
    time_on_task_ms: Option<i32>,
) -> Result<JudgmentAck, AppError> {
    let (user, ops) = ssr::context()?;
    let input = domain::JudgmentInput {
        choice,
        strength,
        rationale,
        // Each change is its own request: choosing again after a failure is a new one.
        client_request_id: Uuid::new_v4().to_string(),
        time_on_task_ms,
    };
    ops::labeling::revise(&ops, &user, judgment_id, input)
        .await
        .map_err(ssr::fail)
}

#[server(input = GetUrl)]
pub async fn list_models() -> Result<Vec<domain::ModelEntry>, AppError> {
    let (user, ops) = ssr::context()?;
    ops::models::list(&ops, &user).await.map_err(ssr::fail)
}

/// `parent`: the name of the model this one was fine-tuned from; blank for none.
#[server]
pub async fn register_model(
    name: String,
    path: String,
    notes: String,
    parent: String,
) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    let parent = Some(parent.trim().to_string()).filter(|p| !p.is_empty());
    let new = domain::NewModel {
        name,
        path: path.trim().to_string(),
        notes,
        parent,
    };
    ops::models::register(&ops, &user, new)
        .await
        .map_err(ssr::fail)?;
    Ok(())
}

#[server(input = GetUrl)]
pub async fn list_users() -> Result<Vec<UserSummary>, AppError> {
    let (user, ops) = ssr::context()?;
    ops::users::list(&ops, &user).await.map_err(ssr::fail)
}

/// Creates the account and returns its one-time invitation path.
#[server]
pub async fn invite_user(email: String, role: String) -> Result<String, AppError> {
    let (user, ops) = ssr::context()?;
    let role = role.parse().map_err(ssr::invalid)?;
    let (_, path) = ops::users::invite(&ops, &user, &email, role)
        .await
        .map_err(ssr::fail)?;
    Ok(path)
}

#[server]
pub async fn set_user_disabled(id: Uuid, disabled: bool) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::users::set_disabled(&ops, &user, id, disabled)
        .await
        .map_err(ssr::fail)
}

#[server]
pub async fn invite_email(secret: String) -> Result<String, AppError> {
    ops::users::invitation_email(&ssr::ops()?, &secret)
        .await
        .map_err(ssr::fail)
}

#[cfg(feature = "ssr")]
fn checked(value: Option<String>) -> bool {
    value.is_some_and(|v| v == "on" || v == "true")
}

/// The export form: everything the API's export spec takes. `campaigns` come as indexed
/// fields (`campaigns[0]`, ...: one box per campaign); `since` and `until` are
/// `datetime-local` values in UTC, blank for no bound.
#[server]
pub async fn start_export(
    #[server(default)] campaigns: Vec<Uuid>,
    format: String,
    file_type: String,
    gzip: Option<String>,
    aggregation: String,
    ties: String,
    both_bad: String,
    min_judgments: u32,
    min_agreement: f64,
    exclude_gold: Option<String>,
    exclude_disabled: Option<String>,
    reveal_labelers: Option<String>,
    since: String,
    until: String,
    test_fraction: f64,
    split_seed: u64,
    columns: String,
    license: String,
) -> Result<Uuid, AppError> {
    let (user, ops) = ssr::context()?;
    let invalid = ssr::invalid;
    if campaigns.is_empty() {
        return Err(AppError::Invalid("choose at least one campaign".into()));
    }
    let mut spec = domain::ExportSpec::new(campaigns, format.parse().map_err(invalid)?);
    spec.since = form_time("since", &since)?;
    spec.until = form_time("until", &until)?;
    spec.reveal_labelers = checked(reveal_labelers);
    spec.file_type = file_type.parse().map_err(invalid)?;
    spec.gzip = checked(gzip);
    spec.aggregation = aggregation.parse().map_err(invalid)?;
    spec.ties = ties.parse().map_err(invalid)?;
    spec.both_bad = both_bad.parse().map_err(invalid)?;
    spec.min_judgments = min_judgments;
    spec.min_agreement = min_agreement;
    spec.exclude_gold = checked(exclude_gold);
    spec.exclude_disabled = checked(exclude_disabled);
    spec.test_fraction = test_fraction;
    spec.split_seed = split_seed;
    spec.columns = columns
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().map_err(invalid))
        .collect::<Result<_, _>>()?;
    spec.license = license;
    ops::exports::start(&ops, &user, spec)
        .await
        .map_err(ssr::fail)
}

/// A `datetime-local` field (`2026-12-01T10:00`, seconds optional) read as UTC.
#[cfg(feature = "ssr")]
fn form_time(field: &str, value: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(value, format).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "{field}: {value:?} is not a date and time such as 2026-12-01T10:00"
            ))
        })
}

#[server]
pub async fn cancel_export(export: Uuid) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::exports::cancel(&ops, &user, export)
        .await
        .map(|_| ())
        .map_err(ssr::fail)
}

/// The caller's exports (all of them for admins), newest first.
#[server(input = GetUrl)]
pub async fn list_exports() -> Result<Vec<domain::ExportRecord>, AppError> {
    let (user, ops) = ssr::context()?;
    ops::exports::list(&ops, &user).await.map_err(ssr::fail)
}

/// What the campaign page's generation card shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationView {
    pub status: CampaignStatus,
    pub models: Vec<domain::ModelRecord>,
    pub settings: domain::GenerateSpec,
    pub jobs: Vec<domain::JobRecord>,
    /// Prompts whose candidates all read the same (offered for regeneration).
    pub identical_only_prompts: i64,
    /// Recent generated candidates: (last prompt turn, text, model), markdown-free text.
    pub samples: Vec<(String, String, String)>,
}

#[server(input = GetUrl)]
pub async fn get_generation_view(id: Uuid) -> Result<GenerationView, AppError> {
    let (user, ops) = ssr::context()?;
    let overview = ops::generation::overview(&ops, &user, id)
        .await
        .map_err(ssr::fail)?;
    Ok(GenerationView {
        status: overview.status,
        models: overview.models,
        settings: overview.settings,
        jobs: overview.jobs,
        identical_only_prompts: overview.identical_only_prompts,
        samples: overview.samples,
    })
}

/// Samples again, with a fresh seed, the prompts whose candidates all read the same.
#[server]
pub async fn regenerate_identical(id: Uuid) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::generation::regenerate_identical(&ops, &user, id)
        .await
        .map_err(ssr::fail)?;
    Ok(())
}

/// Pasted prompts, one per line: plain text lines, or JSON (a string, a message list, or
/// `{"prompt": ...}`) when a line starts with `"`, `[` or `{`. The report is the API's.
#[server]
pub async fn add_prompts_text(id: Uuid, text: String) -> Result<ImportReport, AppError> {
    let (user, ops) = ssr::context()?;
    ops::imports::prompts(&ops, &user, id, &text)
        .await
        .map_err(ssr::fail)
}

#[server]
pub async fn start_generation(
    id: Uuid,
    model: String,
    versus: Option<String>,
    k: u32,
    temperature: f64,
    top_p: f64,
    max_new_tokens: u32,
    seed: Option<String>,
) -> Result<Uuid, AppError> {
    let (user, ops) = ssr::context()?;
    let seed = match seed.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| AppError::Invalid("the seed is a whole number".into()))?,
        ),
    };
    // A second model makes a "new vs old" job: one candidate from each.
    let models = match versus.as_deref().map(str::trim) {
        None | Some("") => Vec::new(),
        Some(other) if other == model => {
            return Err(AppError::Invalid(
                "choose a different model to compare with".into(),
            ))
        }
        Some(other) => vec![
            domain::ModelChoice::Name(model.clone()),
            domain::ModelChoice::Name(other.to_string()),
        ],
    };
    let spec = domain::GenerateSpec {
        model: Some(model),
        models,
        k,
        temperature,
        top_p,
        max_new_tokens,
        seed,
        ..domain::GenerateSpec::default()
    };
    ops::generation::start(&ops, &user, id, Some(spec))
        .await
        .map(|(job, _)| job)
        .map_err(ssr::fail)
}

#[server]
pub async fn cancel_generation(job: Uuid) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::generation::cancel(&ops, &user, job)
        .await
        .map(|_| ())
        .map_err(ssr::fail)
}

/// An optional number from a form field: empty means "the default".
#[cfg(feature = "ssr")]
fn optional<T: std::str::FromStr>(field: &str, value: &str) -> Result<Option<T>, AppError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| AppError::Invalid(format!("{field}: {value:?} is not a number")))
}

/// The training form: a reward model or a DPO run on one finished export.
#[server]
pub async fn start_training(
    export: Uuid,
    kind: String,
    epochs: String,
    max_steps: String,
    lr: String,
    beta: String,
    max_length: String,
) -> Result<Uuid, AppError> {
    let (user, ops) = ssr::context()?;
    let kind: domain::TrainKind = kind.parse().map_err(ssr::invalid)?;
    let settings = domain::TrainSettings {
        epochs: optional("epochs", &epochs)?,
        max_steps: optional("max steps", &max_steps)?,
        lr: optional("learning rate", &lr)?,
        // The beta field only applies to DPO.
        beta: match kind {
            domain::TrainKind::Dpo => optional("beta", &beta)?,
            domain::TrainKind::Reward => None,
        },
        max_length: optional("max length", &max_length)?,
        ..domain::TrainSettings::default()
    };
    ops::training::start(
        &ops,
        &user,
        export,
        domain::NewTrainingRun { kind, settings },
    )
    .await
    .map_err(ssr::fail)
}

/// Training runs on the caller's exports, newest first.
#[server(input = GetUrl)]
pub async fn list_training() -> Result<Vec<domain::TrainingRecord>, AppError> {
    let (user, ops) = ssr::context()?;
    ops::training::list(&ops, &user).await.map_err(ssr::fail)
}

#[server]
pub async fn cancel_training(run: Uuid) -> Result<(), AppError> {
    let (user, ops) = ssr::context()?;
    ops::training::cancel(&ops, &user, run)
        .await
        .map(|_| ())
        .map_err(ssr::fail)
}

/// A filter field of the item browser's form: empty means "any".
#[cfg(feature = "ssr")]
fn chosen<T: std::str::FromStr<Err = domain::Invalid>>(value: &str) -> Result<Option<T>, AppError> {
    match value.trim() {
        "" => Ok(None),
        text => Ok(Some(text.parse()?)),
    }
}

/// One page of the item browser; the filters as the form sends them (empty: any).
#[server(input = GetUrl)]
pub async fn list_items(
    id: Uuid,
    q: String,
    status: String,
    agreement: String,
    gold: String,
    cursor: String,
) -> Result<domain::ItemPage, AppError> {
    let (user, ops) = ssr::context()?;
    let query = domain::ItemQuery {
        q: Some(q),
        status: chosen(&status)?,
        agreement: chosen(&agreement)?,
        gold: match gold.trim() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(AppError::Invalid(format!(
                    "gold {other:?} is not true or false"
                )))
            }
        },
        cursor: Some(cursor),
        limit: None,
    };
    Ok(ops::items::list(&ops, &user, id, &query).await?)
}

/// An item as its page shows it: the stored item and its texts rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemView {
    pub item: domain::ItemDetail,
    pub prompt: Vec<RenderedMessage>,
    /// Each response's markdown, rendered and sanitised, in the item's order.
    pub responses_html: Vec<String>,
}

#[server(input = GetUrl)]
pub async fn get_item(id: Uuid) -> Result<ItemView, AppError> {
    let (user, ops) = ssr::context()?;
    let item = ops::items::get(&ops, &user, id).await?;
    Ok(ItemView {
        prompt: ssr::render_messages(&item.prompt),
        responses_html: item
            .responses
            .iter()
            .map(|r| crate::markdown::render(&r.text))
            .collect(),
        item,
    })
}
