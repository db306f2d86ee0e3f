//! The researcher's export page: start an export with its filters, watch its progress, and
//! download the files and the dataset card.

use domain::{ExportRecord, ExportStatus, Role};
use leptos::prelude::*;

use crate::api::*;
use crate::errors::{error_notice, ErrorNotice};
use crate::pages::{outcome, poll_while, RequireLogin};
use crate::training::TrainingSection;

#[component]
pub fn ExportsPage() -> impl IntoView {
    let start = ServerAction::<StartExport>::new();
    let cancel = ServerAction::<CancelExport>::new();
    let campaigns = Resource::new(|| (), |_| list_campaigns());
    let tick = RwSignal::new(0u32);
    let exports = Resource::new(
        move || (start.version().get(), cancel.version().get(), tick.get()),
        |_| list_exports(),
    );
    // Poll while an export is still queued or running.
    poll_while(
        move || {
            exports.get_untracked().is_some_and(|r| {
                r.is_ok_and(|list| {
                    list.iter()
                        .any(|e| matches!(e.status, ExportStatus::Queued | ExportStatus::Running))
                })
            })
        },
        tick,
        std::time::Duration::from_millis(700),
    );
    view! {
        <RequireLogin>
            <h1>"Exports"</h1>
            // Labelers may not export: they see why, not forms the server would refuse.
            <Show when=|| !crate::pages::signed_in().is_some_and(|u| u.role == Role::Labeler)
                  fallback=|| view! { <ErrorNotice error=AppError::Forbidden("researchers and admins only".into())/> }>
            <section class="card">
                <h2>"New export"</h2>
                {outcome(start, "Export started: it appears in the list below when it is ready.")}
                {outcome(cancel, "Export cancelled.")}
                <ActionForm action=start>
                    <p class="hint">"Every field starts at its default, the same as the API's and the CLI's: all judgments, no filters, one file."</p>
                    <fieldset id="export-campaigns">
                        <legend>"Campaigns (their rows in one dataset)"</legend>
                        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                            {move || campaigns.get().and_then(|r| r.ok()).map(|list| {
                                let many = list.len() > 1;
                                view! {
                                    <div class="row">
                                        {list.into_iter().enumerate().map(|(i, row)| view! {
                                            <label class="check">
                                                // Indexed names: the server reads them as one list.
                                                <input type="checkbox" name=format!("campaigns[{i}]")
                                                       value=row.campaign.id.to_string() checked=!many/>
                                                {row.campaign.name.clone()}
                                            </label>
                                        }).collect_view()}
                                    </div>
                                }
                            })}
                        </Suspense>
                    </fieldset>
                    <div class="row">
                        <label>"Format"
                            <select name="format" id="export-format">
                                <option value="trl">"TRL (prompt, chosen, rejected)"</option>
                                <option value="trl-conversational">"TRL conversational"</option>
                                <option value="hh-rlhf">"HH-RLHF"</option>
                                <option value="raw">"raw judgments"</option>
                            </select>
                        </label>
                        <label>"File"
                            <select name="file_type" id="export-file-type">
                                <option value="jsonl">"JSONL"</option>
                                <option value="parquet">"Parquet"</option>
                            </select>
                        </label>
                        <label class="check"><input type="checkbox" name="gzip" value="on"/> "gzip JSONL"</label>
                    </div>
                    <div class="row">
                        <label>"Aggregation"
                            <select name="aggregation">
                                <option value="majority">"majority vote"</option>
                                <option value="vote-share">"vote share (ties count half)"</option>
                            </select>
                        </label>
                        <label>"Ties"
                            <select name="ties">
                                <option value="drop">"drop"</option>
                                <option value="keep">"keep (outcome column)"</option>
                            </select>
                        </label>
                        <label>"Both bad"
                            <select name="both_bad">
                                <option value="drop">"drop"</option>
                                <option value="keep">"keep (outcome column)"</option>
                            </select>
                        </label>
                    </div>
                    <div class="row">
                        <label>"Judged from (UTC, blank: the start)" <input type="datetime-local" name="since" id="export-since"/></label>
                        <label>"Judged before (UTC, blank: now)" <input type="datetime-local" name="until" id="export-until"/></label>
                    </div>
                    <div class="row">
                        <label>"Min judgments per item" <input type="number" name="min_judgments" value="1" min="1"/></label>
                        <label>"Min agreement (0–1)" <input type="number" name="min_agreement" value="0" min="0" max="1" step="0.05"/></label>
                        <label>"Test split (share of prompts)" <input type="number" name="test_fraction" value="0" min="0" max="0.99" step="0.05"/></label>
                        <label>"Split seed" <input type="number" name="split_seed" value="0" min="0"/></label>
                    </div>
                    <div class="row">
                        <label class="check"><input type="checkbox" name="exclude_gold" value="on"/> "Exclude gold items"</label>
                        <label class="check"><input type="checkbox" name="exclude_disabled" value="on"/> "Exclude disabled labelers"</label>
                        // E-mails instead of pseudonyms are for admins alone (the server refuses others).
                        <Show when=|| crate::pages::signed_in().is_some_and(|u| u.is_admin())>
                            <label class="check"><input type="checkbox" name="reveal_labelers" value="on" id="export-reveal"/> "Raw format: labelers by e-mail"</label>
                        </Show>
                    </div>
                    <div class="row">
                        <label>"Extra columns"
                            <input name="columns" id="export-columns" placeholder="margin,prompt_id,item_id,agreement,n_judgments,chosen_model,rejected_model"/>
                        </label>
                        <label>"License" <input name="license" value="other" maxlength="100"/></label>
                    </div>
                    <button type="submit" class="primary" id="start-export">"Export"</button>
                </ActionForm>
            </section>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || exports.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(list) if list.is_empty() => view! { <p class="notice">"No exports yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="list" id="exports">
                            <thead><tr><th>"Started"</th><th>"Format"</th><th>"Status"</th><th>"Rows"</th><th>"Files"</th></tr></thead>
                            <tbody>{list.into_iter().map(|e| export_row(e, cancel)).collect_view()}</tbody>
                        </table>
                    }.into_any(),
                })}
            </Suspense>
            // Not inside a Suspense: its own Suspenses would nest, which does not hydrate.
            <TrainingSection exports=exports/>
            </Show>
        </RequireLogin>
    }
}

fn export_row(e: ExportRecord, cancel: ServerAction<CancelExport>) -> impl IntoView {
    let share = match (e.total, e.status) {
        (_, ExportStatus::Done) => 1.0,
        (Some(total), _) if total > 0 => (e.done as f64 / total as f64).min(1.0),
        _ => 0.0,
    };
    let id = e.id;
    view! {
        <tr class="export" data-status=e.status.as_str()>
            <td>{domain::words::moment(&e.created_at)}</td>
            <td>{e.spec.format.as_str()} " · " {e.spec.file_type.as_str()}</td>
            <td>
                <span class=format!("badge {}", e.status)>{e.status.as_str()}</span>
                {matches!(e.status, ExportStatus::Queued | ExportStatus::Running).then(|| view! {
                    <button class="link cancel-export" on:click=move |_| {
                        cancel.dispatch(CancelExport { export: id });
                    }>"Cancel"</button>
                    <div class="meter"><div class="fill" style=format!("width: {:.1}%", share * 100.0)></div></div>
                })}
                {e.error.clone().map(|err| view! { <p class="error">{err}</p> })}
            </td>
            <td>{e.rows.map(|r| r.to_string()).unwrap_or_else(|| "–".into())}</td>
            <td>
                {e.files.into_iter().filter(|_| e.status == ExportStatus::Done).map(|f| view! {
                    // A file, not a page of the app: `download` keeps the client-side router
                    // from taking the click over (it would show "Page not found"); the server
                    // names the file.
                    <a class="download" href=format!("/api/v1/exports/{id}/files/{}", f.name)
                       download=""
                       title=format!("sha256 {}", f.sha256)>{f.name.clone()}</a>
                    " "
                }).collect_view()}
            </td>
        </tr>
    }
}
