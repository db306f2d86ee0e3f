//! The models page: every registered model with the model it was fine-tuned from, its files
//! and their sizes, and the training run that made it; admins register new ones here.

use domain::{ModelEntry, Role};
use leptos::prelude::*;

use crate::api::{list_models, AppError, RegisterModel};
use crate::errors::{error_notice, ErrorNotice};
use crate::pages::{outcome, signed_in, RequireLogin};
use domain::words::{count, moment, size};

#[component]
pub fn ModelsPage() -> impl IntoView {
    let register = ServerAction::<RegisterModel>::new();
    let form = NodeRef::<leptos::html::Form>::new();
    // A registered model's form empties, so that the next one starts blank.
    Effect::new(move |_| {
        if let Some(Ok(_)) = register.value().get() {
            if let Some(form) = form.get_untracked() {
                form.reset();
            }
        }
    });
    let models = Resource::new(move || register.version().get(), |_| list_models());
    view! {
        <RequireLogin>
            <h1>"Models"</h1>
            <Show when=|| signed_in().is_some_and(|u| u.role != Role::Labeler)
                  fallback=|| view! { <ErrorNotice error=AppError::Forbidden("admins and researchers only".into())/> }>
            <Show when=|| signed_in().is_some_and(|u| u.is_admin())>
                <section class="card" id="register-model">
                    <h2>"Register a model"</h2>
                    <p class="hint">"A GGUF file, or a Hugging Face folder with config.json, on this server's disk."</p>
                    {outcome(register, "Model registered.")}
                    <ActionForm action=register node_ref=form>
                        <div class="row">
                            <label>"Name" <input name="name" id="model-name" required maxlength="200"/></label>
                            <label>"Path" <input name="path" id="model-path" required placeholder="/models/smol.gguf"/></label>
                            <label>"Fine-tuned from (optional)" <input name="parent" id="model-parent" list="model-names"/></label>
                        </div>
                        <label>"Notes" <input name="notes" maxlength="10000"/></label>
                        <button type="submit" class="primary" id="register">"Register"</button>
                    </ActionForm>
                </section>
            </Show>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || models.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(list) => models_table(list).into_any(),
                })}
            </Suspense>
            </Show>
        </RequireLogin>
    }
}

fn models_table(models: Vec<ModelEntry>) -> impl IntoView {
    let names: Vec<String> = models.iter().map(|m| m.model.name.clone()).collect();
    if models.is_empty() {
        return view! { <p class="notice" id="no-models">"No models are registered yet."</p> }
            .into_any();
    }
    view! {
        <datalist id="model-names">
            {names.into_iter().map(|n| view! { <option value=n/> }).collect_view()}
        </datalist>
        <table class="list" id="models">
            <thead><tr><th>"Name"</th><th>"Format"</th><th>"Fine-tuned from"</th><th>"Made by"</th><th>"Files"</th><th>"Registered"</th></tr></thead>
            <tbody>
                {models.into_iter().map(|m| {
                    let runs = m.runs_from_it;
                    view! {
                        <tr class="model" data-name=m.model.name.clone()>
                            <td><strong>{m.model.name.clone()}</strong>
                                {(!m.model.notes.is_empty()).then(|| view! { <div class="hint">{m.model.notes.clone()}</div> })}
                                {(runs > 0).then(|| view! { <div class="hint">{format!("base of {}", count(runs, "training run"))}</div> })}</td>
                            <td>{m.model.format.as_str()}</td>
                            <td class="parent">{m.parent.clone().unwrap_or_else(|| "–".into())}</td>
                            <td class="made-by">{match m.made_by.clone() {
                                Some(run) => view! {
                                    <a href="/exports" title=format!("run {}", run.run_id)>{format!("{} run on export {}", run.kind, short(&run.export_id.to_string()))}</a>
                                }.into_any(),
                                None => view! { "registered" }.into_any(),
                            }}</td>
                            <td class="files">
                                <div class="hint path">{m.model.path.clone()}</div>
                                {(!m.files.is_empty()).then(|| view! {
                                    <div>{format!("{} · {}", count(m.file_count as i64, "file"), size(m.bytes))}</div>
                                    <details>
                                        <summary>"Files"</summary>
                                        <ul class="files">
                                            {m.files.iter().map(|f| view! { <li>{f.name.clone()} " · " {size(f.bytes)}</li> }).collect_view()}
                                        </ul>
                                    </details>
                                }.into_any())}
                                {m.files_note.clone().map(|n| view! { <div class="hint">{n}</div> })}
                            </td>
                            <td>{moment(&m.model.created_at)}</td>
                        </tr>
                    }
                    // Erased: the row's full type is too deep for the compiler's query limit.
                    .into_any()
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The last block of an id, enough to tell exports apart on the page (the first blocks of a
/// time-ordered id are its time, alike for exports made together).
fn short(id: &str) -> String {
    id.rsplit('-').next().unwrap_or(id).to_string()
}
