//! The admin's generation page of a campaign: paste prompts, pick a model and sampling
//! settings, start a job, watch its progress bar and tokens/s, cancel it, preview outputs.

use domain::JobRecord;
use leptos::prelude::*;
use uuid::Uuid;

use crate::api::*;
use crate::errors::{error_notice, ErrorNotice};
use crate::pages::{campaign_id, outcome, poll_while, FormTextarea, RequireLogin};

#[component]
pub fn GenerationPage() -> impl IntoView {
    match campaign_id() {
        Some(id) => view! { <RequireLogin><GenerationForms id=id/></RequireLogin> }.into_any(),
        None => view! { <crate::pages::NotFoundPage/> }.into_any(),
    }
}

#[component]
fn GenerationForms(id: Uuid) -> impl IntoView {
    let add = ServerAction::<AddPromptsText>::new();
    let start = ServerAction::<StartGeneration>::new();
    let cancel = ServerAction::<CancelGeneration>::new();
    let regenerate = ServerAction::<RegenerateIdentical>::new();
    let tick = RwSignal::new(0u32);
    let view_data = Resource::new(
        move || {
            (
                add.version().get(),
                start.version().get(),
                cancel.version().get(),
                regenerate.version().get(),
                tick.get(),
            )
        },
        move |_| get_generation_view(id),
    );
    // Poll while a job is open.
    poll_while(
        move || {
            view_data
                .get_untracked()
                .is_some_and(|r| r.is_ok_and(|v| v.jobs.iter().any(|j| j.status.is_open())))
        },
        tick,
        std::time::Duration::from_millis(800),
    );
    let forms = move || {
        view! {
                <p class="hint">"Paste prompts (one per line; JSON lines may hold message lists), then generate K responses per prompt with a registered model, or one response from each of two models (a fine-tune against its base: new vs old). Items appear for labelers as each prompt is done."</p>
                {move || add.value().get().map(|r| {
                    crate::pages::import_outcome(r, "prompts-added", "prompts-report", |report| {
                        format!(
                            "Added {}.{}",
                            domain::words::count(report.imported as i64, "prompt"),
                            crate::pages::import_notes(report)
                        )
                    })
                })}
                <ActionForm action=add>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <FormTextarea name="text" rows=5 id="prompts-text" placeholder="one prompt per line" aria_label="Prompts to add"/>
                    <button type="submit" id="add-prompts">"Add prompts"</button>
                </ActionForm>
                {outcome(start, "Generation queued: its job is in the list below.")}
                {outcome(cancel, "Generation cancelled.")}
                {outcome(regenerate, "Regeneration queued: those prompts are sampled again with a new seed.")}
                <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                    {move || view_data.get().map(|r| match r {
                        Err(e) => error_notice(&e),
                        Ok(v) if v.status == domain::CampaignStatus::Closed => view! {
                            <p class="notice" id="closed-note">"This campaign is closed: nothing more is generated for it."</p>
                        }.into_any(),
                        Ok(v) => {
                            let s = v.settings.clone();
                            view! {
                                <ActionForm action=start>
                                    <input type="hidden" name="id" value=id.to_string()/>
                                    <div class="row">
                                        <label>"Model"
                                            <select name="model" id="generate-model">
                                                {v.models.iter().map(|m| view! {
                                                    <option value=m.name.clone()
                                                            selected=s.models.first().map(|c| c.name().to_string()).or_else(|| s.model.clone()).as_ref() == Some(&m.name)>
                                                        {m.name.clone()}
                                                    </option>
                                                }).collect_view()}
                                            </select>
                                        </label>
                                        <label>"Compare with"
                                            <select name="versus" id="generate-versus">
                                                <option value="" selected=s.models.len() < 2>"— nothing: K samples of the model"</option>
                                                {v.models.iter().map(|m| view! {
                                                    <option value=m.name.clone()
                                                            selected=s.models.get(1).map(|c| c.name()) == Some(m.name.as_str())>
                                                        {format!("{} (one candidate each)", m.name)}
                                                    </option>
                                                }).collect_view()}
                                            </select>
                                        </label>
                                        <label>"K per prompt" <input type="number" name="k" min="2" max="8" value=s.k.to_string()/></label>
                                        <label>"Temperature" <input type="number" name="temperature" min="0" max="2" step="0.05" value=s.temperature.to_string()/></label>
                                        <label>"Top-p" <input type="number" name="top_p" min="0.05" max="1" step="0.05" value=s.top_p.to_string()/></label>
                                        <label>"Max new tokens" <input type="number" name="max_new_tokens" min="1" max="4096" value=s.max_new_tokens.to_string()/></label>
                                        <label>"Seed" <input name="seed" placeholder="random" value=s.seed.map(|x| x.to_string()).unwrap_or_default()/></label>
                                    </div>
                                    <button type="submit" class="primary" id="start-generation">"Generate"</button>
                                </ActionForm>
                                {(v.identical_only_prompts > 0).then(|| view! {
                                    <div class="notice" id="identical-only">
                                        <p>{format!(
                                            "{} gave only identical candidates, so labelers see nothing of them. Sample them again with a new seed (and, if they repeat, a higher temperature):",
                                            domain::words::count(v.identical_only_prompts, "prompt")
                                        )}</p>
                                        <ActionForm action=regenerate>
                                            <input type="hidden" name="id" value=id.to_string()/>
                                            <button type="submit" id="regenerate">"Regenerate them"</button>
                                        </ActionForm>
                                    </div>
                                })}
                                <table class="list" id="jobs">
                                    <thead><tr><th>"Started"</th><th>"Status"</th><th>"Prompts"</th><th>"Tokens/s"</th><th></th></tr></thead>
                                    <tbody>{v.jobs.into_iter().map(|j| job_row(j, cancel)).collect_view()}</tbody>
                                </table>
                                {(!v.samples.is_empty()).then(|| view! {
                                    <h3>"Latest outputs"</h3>
                                    <ul class="samples">
                                        {v.samples.into_iter().map(|(prompt, text, model)| view! {
                                            <li><span class="hint">{model} " · " {prompt}</span><pre>{text}</pre></li>
                                        }).collect_view()}
                                    </ul>
                                })}
                            }.into_any()
                        }
                    })}
                </Suspense>
        }
    };
    view! {
        <p><a href=format!("/campaigns/{id}")>"← back to the campaign"</a></p>
        <section class="card" id="generation">
            <h1>"Generate candidates"</h1>
            // Only admins manage a campaign's generation: others see why, not the forms.
            <Show when=|| crate::pages::signed_in().is_some_and(|u| u.is_admin())
                  fallback=|| view! { <ErrorNotice error=AppError::Forbidden("admins only".into())/> }>
                {forms()}
            </Show>
        </section>
    }
}

fn job_row(j: JobRecord, cancel: ServerAction<CancelGeneration>) -> impl IntoView {
    let share = if j.total > 0 {
        f64::from(j.done + j.failed) / f64::from(j.total)
    } else {
        0.0
    };
    let open = j.status.is_open();
    view! {
        <tr class="job" data-status=j.status.as_str()>
            <td>{domain::words::moment(&j.created_at)}</td>
            <td>
                <span class=format!("badge {}", j.status)>{j.status.as_str()}</span>
                <div class="meter"><div class="fill" style=format!("width: {:.1}%", share * 100.0)></div></div>
                {j.error.clone().map(|e| view! { <p class="error">{e}</p> })}
                {(j.identical_pairs > 0).then(|| view! {
                    <p class="notice identical-pairs">{format!(
                        "{} not shown to labelers: both candidates read the same. A higher temperature gives more varied answers.",
                        domain::words::count(i64::from(j.identical_pairs), "pair")
                    )}</p>
                })}
            </td>
            <td class="job-progress">{j.done} " / " {j.total} {(j.failed > 0).then(|| format!(" ({} failed)", j.failed))}</td>
            <td>{j.tokens_per_s.map(|t| format!("{t:.1}")).unwrap_or_else(|| "–".into())}</td>
            <td>
                {open.then(|| view! {
                    <ActionForm action=cancel>
                        <input type="hidden" name="job" value=j.id.to_string()/>
                        <button type="submit">"Cancel"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
