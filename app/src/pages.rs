//! Navigation, sign-in, the campaign list, campaign administration and user administration.

use domain::{CampaignStatus, ImportReport, Role};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

use crate::api::*;
use crate::errors::{action_error, error_notice, login_path, ErrorNotice};
use domain::words::count;

#[component]
pub fn Nav() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <header class="top">
            <a class="brand" href="/">"Pairwise"</a>
            <Suspense fallback=|| ()>
                {move || me.get().and_then(|r| r.ok()).flatten().map(|user| view! {
                    <nav>
                        <a href="/">"Campaigns"</a>
                        {(user.role != Role::Labeler).then(|| view! { <a href="/exports">"Exports"</a> <a href="/models">"Models"</a> })}
                        {(user.role == Role::Admin).then(|| view! { <a href="/users">"Users"</a> })}
                        <span class="who">{user.email.clone()} " · " {user.role.as_str()}</span>
                        <form method="post" action="/auth/logout" class="inline">
                            <button type="submit" class="link">"Sign out"</button>
                        </form>
                    </nav>
                })}
            </Suspense>
        </header>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || match query.read().get("error").as_deref() {
        Some("throttled") => Some("Too many failed attempts. Wait a few minutes and try again."),
        Some(_) => Some("Wrong e-mail or password."),
        None => None,
    };
    let next = move || query.read().get("next").unwrap_or_else(|| "/".into());
    // After a failed attempt the e-mail comes back, so only the password is typed again.
    let email = move || query.read().get("email").unwrap_or_default();
    let retrying = move || query.read().get("email").is_some();
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <form method="post" action="/auth/login">
                <input type="hidden" name="next" value=next/>
                <label>"E-mail" <input type="email" name="email" required autocomplete="username" value=email autofocus=move || !retrying()/></label>
                <label>"Password" <input type="password" name="password" required autocomplete="current-password" autofocus=retrying/></label>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </section>
    }
}

/// Where an address leads nowhere: said plainly, with the way back.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    view! {
        <section class="card narrow">
            <h1>"Page not found"</h1>
            <ErrorNotice error=AppError::NotFound/>
        </section>
    }
}

/// A `<textarea>` set as inner HTML, so hydration never walks into it: tachys 0.2 mis-hydrates
/// server-rendered textareas (leptos-rs/leptos#4818) and the whole page would stay inert.
/// Arguments are literals of this crate, except `value`, which is escaped.
#[component]
pub(crate) fn FormTextarea(
    name: &'static str,
    rows: u32,
    #[prop(optional)] id: Option<&'static str>,
    #[prop(optional)] placeholder: Option<&'static str>,
    /// Its name for screen readers, where no `<label>` wraps it.
    #[prop(optional)]
    aria_label: Option<&'static str>,
    /// The text it starts with (user data: escaped).
    #[prop(optional)]
    value: Option<String>,
) -> impl IntoView {
    let mut html = format!(r#"<textarea name="{name}" rows="{rows}""#);
    if let Some(id) = id {
        html.push_str(&format!(r#" id="{id}""#));
    }
    if let Some(placeholder) = placeholder {
        html.push_str(&format!(r#" placeholder="{placeholder}""#));
    }
    if let Some(aria_label) = aria_label {
        html.push_str(&format!(r#" aria-label="{aria_label}""#));
    }
    html.push('>');
    if let Some(value) = value {
        html.push_str(&html_escape::encode_text(&value));
    }
    html.push_str("</textarea>");
    view! { <div class="textarea" inner_html=html></div> }
}

/// Bumps `tick` every `every` while `busy()` holds: the pages' live progress (a resource keyed
/// on `tick` refetches). The timer stops with the page.
pub(crate) fn poll_while(
    busy: impl Fn() -> bool + Clone + 'static,
    tick: RwSignal<u32>,
    every: std::time::Duration,
) {
    Effect::new(move |_| {
        let busy = busy.clone();
        let handle = set_interval_with_handle(
            move || {
                if busy() {
                    tick.update(|n| *n += 1);
                }
            },
            every,
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    });
}

/// The signed-in caller, for what the page offers (the server decides what it allows): set
/// by [`RequireLogin`] for the page inside it.
pub(crate) fn signed_in() -> Option<domain::CurrentUser> {
    use_context::<domain::CurrentUser>()
}

/// Sends visitors who are not signed in to the login page, which brings them back here; the
/// page inside knows its caller through [`signed_in`].
#[component]
pub(crate) fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let children = StoredValue::new(children);
    let back_here = move || login_path(&crate::errors::here());
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r.ok().flatten() {
                Some(user) => {
                    provide_context(user);
                    children.read_value()().into_any()
                }
                None => view! { <Redirect path=back_here()/> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
pub fn HomePage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let campaigns = Resource::new(|| (), |_| list_campaigns());
    view! {
        <RequireLogin>
            <div class="row spread">
                <h1>"Campaigns"</h1>
                <Suspense fallback=|| ()>
                    {move || me.get().and_then(|r| r.ok()).flatten().filter(|u| u.is_admin()).map(|_| view! {
                        <a class="button primary" href="/campaigns/new">"New campaign"</a>
                    })}
                </Suspense>
            </div>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || campaigns.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(list) if list.is_empty() => view! {
                        <p class="notice">"No campaigns yet. Admins create them; labelers see the ones they were added to."</p>
                    }.into_any(),
                    Ok(list) => {
                        let (archived, current): (Vec<_>, Vec<_>) = list.into_iter().partition(|r| r.campaign.archived);
                        view! {
                            {campaign_table(current)}
                            {(!archived.is_empty()).then(|| view! {
                                <details class="archived">
                                    <summary>{format!("Archived ({})", archived.len())}</summary>
                                    {campaign_table(archived)}
                                </details>
                            })}
                        }.into_any()
                    }
                })}
            </Suspense>
        </RequireLogin>
    }
}

fn campaign_table(rows: Vec<CampaignRow>) -> impl IntoView {
    view! {
                        <table class="list">
                            <thead><tr><th>"Name"</th><th>"Status"</th><th>"Overlap"</th><th></th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|row| {
                                    let c = row.campaign;
                                    view! {
                                        <tr class="campaign">
                                            <td><a href=format!("/campaigns/{}", c.id)>{c.name.clone()}</a></td>
                                            <td><span class=format!("badge {}", c.status)>{c.status.as_str()}</span></td>
                                            <td>{c.overlap}</td>
                                            // Only to those who may label it: others would get an error.
                                            <td>{row.can_label.then(|| view! {
                                                <a class="label" href=format!("/campaigns/{}/label", c.id)>"Label"</a>
                                            })}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
    }
}

#[component]
pub fn NewCampaignPage() -> impl IntoView {
    let create = ServerAction::<CreateCampaign>::new();
    view! {
        <RequireLogin>
            <section class="card">
                <h1>"New campaign"</h1>
                {move || action_error(&create.value().get())}
                <ActionForm action=create>
                    <label>"Name" <input name="name" required maxlength="200"/></label>
                    <label>"Guidelines (markdown)" <FormTextarea name="guidelines" rows=6/></label>
                    <CampaignOptionFields settings=domain::NewCampaign::named("") prefix="new"/>
                    <button type="submit" class="primary">"Create"</button>
                </ActionForm>
            </section>
        </RequireLogin>
    }
}

/// The options the new-campaign form and the settings form share (what `campaign_options`
/// reads on the server), filled from `settings`; `prefix` keeps their ids apart.
#[component]
fn CampaignOptionFields(settings: domain::NewCampaign, prefix: &'static str) -> impl IntoView {
    let rationale = settings.rationale;
    let undo_minutes = f64::from(settings.undo_seconds) / 60.0;
    let max_undo_minutes = domain::MAX_UNDO_SECONDS / 60;
    view! {
        <div class="row">
            <label>"Labelers per item (overlap)" <input type="number" name="overlap" id=format!("{prefix}-overlap") value=settings.overlap.to_string() min="1" max=domain::MAX_OVERLAP.to_string()/></label>
            <label>"Strength scale (0 = off)" <input type="number" name="strength_scale" value=settings.strength_scale.to_string() min="0" max=domain::MAX_STRENGTH_SCALE.to_string()/></label>
            <label>"Rationale"
                <select name="rationale">
                    {domain::RationalePolicy::ALL.iter().map(|r| view! {
                        <option value=r.as_str() selected=*r == rationale>{r.as_str()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Answers can be changed for (minutes, 0 = never)"
                <input type="number" name="undo_minutes" id=format!("{prefix}-undo") value=undo_minutes.to_string() min="0" max=max_undo_minutes.to_string() step="any"/></label>
        </div>
        <label class="check"><input type="checkbox" name="allow_tie" value="on" checked=settings.allow_tie/> "Allow tie"</label>
        <label class="check"><input type="checkbox" name="allow_both_bad" value="on" checked=settings.allow_both_bad/> "Allow both bad"</label>
    }
}

/// A prompt's conversation, each turn under its role, as the labeling and item pages show it.
#[component]
pub(crate) fn PromptView(
    messages: Vec<RenderedMessage>,
    /// Framed as a card (the item page), or bare (the labeling page frames it).
    #[prop(optional)]
    card: bool,
) -> impl IntoView {
    view! {
        <section class="prompt" class:card=card>
            {messages.into_iter().map(|m| view! {
                <div class=format!("message {}", m.role)>
                    <span class="role">{m.role.clone()}</span>
                    <div class="markdown" inner_html=m.html></div>
                </div>
            }).collect_view()}
        </section>
    }
}

pub(crate) fn campaign_id() -> Option<Uuid> {
    let params = use_params_map();
    params
        .read_untracked()
        .get("id")
        .and_then(|id| id.parse().ok())
}

#[component]
pub fn CampaignPage() -> impl IntoView {
    let Some(id) = campaign_id() else {
        return view! { <crate::pages::NotFoundPage/> }.into_any();
    };
    let set_status = ServerAction::<SetCampaignStatus>::new();
    let add = ServerAction::<AddMember>::new();
    let import = ServerAction::<ImportText>::new();
    let import_form = NodeRef::<leptos::html::Form>::new();
    // A successful import empties its form, so a second click cannot import it again.
    Effect::new(move |_| {
        if let Some(Ok(report)) = import.value().get() {
            if report.error_count == 0 {
                if let Some(form) = import_form.get_untracked() {
                    form.reset();
                }
            }
        }
    });
    let confirming_close = RwSignal::new(false);
    let update = ServerAction::<UpdateCampaign>::new();
    let archive = ServerAction::<SetCampaignArchived>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let delete = ServerAction::<DeleteCampaign>::new();
    let confirming_delete = RwSignal::new(false);
    let view_data = Resource::new(
        move || {
            (
                (
                    update.version().get(),
                    archive.version().get(),
                    remove.version().get(),
                ),
                set_status.version().get(),
                add.version().get(),
                import.version().get(),
            )
        },
        move |_| get_campaign_view(id),
    );
    view! {
        <RequireLogin>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || view_data.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(v) => campaign_body(v, Actions {
                        set_status, add, import, import_form, confirming_close,
                        update, archive, remove, delete, confirming_delete,
                    }).into_any(),
                })}
            </Suspense>
        </RequireLogin>
    }
    .into_any()
}

/// What the campaign page can do, and the state of its forms.
#[derive(Clone, Copy)]
struct Actions {
    set_status: ServerAction<SetCampaignStatus>,
    add: ServerAction<AddMember>,
    import: ServerAction<ImportText>,
    import_form: NodeRef<leptos::html::Form>,
    /// "Close" was clicked once: the page asks before closing.
    confirming_close: RwSignal<bool>,
    update: ServerAction<UpdateCampaign>,
    archive: ServerAction<SetCampaignArchived>,
    remove: ServerAction<RemoveMember>,
    delete: ServerAction<DeleteCampaign>,
    /// "Delete" was clicked once.
    confirming_delete: RwSignal<bool>,
}

/// A short confirmation after an action that changed something, or its error.
pub(crate) fn outcome<T>(action: ServerAction<T>, done: &'static str) -> impl IntoView
where
    T: leptos::server_fn::ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    T::Output: Clone + Send + Sync + 'static,
{
    move || match action.value().get() {
        Some(Ok(_)) => Some(view! { <p class="toast" role="status">{done}</p> }.into_any()),
        Some(Err(e)) => Some(error_notice(&e)),
        None => None,
    }
}

fn campaign_body(v: CampaignView, actions: Actions) -> impl IntoView {
    let Actions {
        set_status,
        add,
        import,
        import_form,
        confirming_close,
        update,
        archive,
        remove,
        delete,
        confirming_delete,
    } = actions;
    let judgments = v.stats.as_ref().map_or(0, |s| s.judgments + s.skips);
    let c = v.campaign.clone();
    let id = c.id;
    let closed = c.status == CampaignStatus::Closed;
    let transitions: Vec<(CampaignStatus, &str)> = [
        (
            CampaignStatus::Active,
            if c.status == CampaignStatus::Paused {
                "Resume"
            } else {
                "Activate"
            },
        ),
        (CampaignStatus::Paused, "Pause"),
        (CampaignStatus::Closed, "Close"),
    ]
    .into_iter()
    .filter(|(to, _)| c.status.can_become(*to) && *to != CampaignStatus::Closed)
    .collect();
    let can_close = c.status.can_become(CampaignStatus::Closed);
    view! {
        <div class="row spread">
            <h1>{c.name.clone()} " " <span class=format!("badge {}", c.status)>{c.status.as_str()}</span></h1>
            <div class="row">
                {v.can_analyse.then(|| view! {
                    <a class="button" id="browse-items" href=format!("/campaigns/{id}/items")>"Browse items"</a>
                })}
                {(v.can_label && c.status == CampaignStatus::Active).then(|| view! {
                    <a class="button primary" id="start-labeling" href=format!("/campaigns/{id}/label")>"Start labeling"</a>
                })}
            </div>
        </div>
        {(v.can_label && c.status == CampaignStatus::Paused).then(|| view! {
            <p class="notice" id="paused-note">"This campaign is paused: labeling resumes when an admin resumes it."</p>
        })}
        {closed.then(|| view! {
            <p class="notice" id="closed-note">"This campaign is closed: nothing more is labeled, imported or generated here. Its judgments stay available for export."</p>
        })}
        {v.progress.map(|(p, outlook)| view! {
            <p class="progress-line">{match (p.done, p.skipped) {
                (0, 0) => "You have not judged any items yet.".to_string(),
                (done, 0) => format!("You have judged {}.", count(done, "item")),
                (done, skipped) => format!("You have judged {} and skipped {}.", count(done, "item"), count(skipped, "item")),
            }}
            " " <span id="left-for-you">{if outlook.left_for_you == 0 {
                "Nothing is left for you for now.".to_string()
            } else {
                format!("{} left for you.", count(outlook.left_for_you, "item"))
            }}</span>
            " " {format!("The campaign has {} of {} complete.", outlook.items_complete, count(outlook.items, "item"))}</p>
        })}
        <details open=c.guidelines.is_empty().then_some("").is_none()>
            <summary>"Guidelines"</summary>
            <div class="markdown" inner_html=v.guidelines_html.clone()></div>
        </details>
        {(v.can_manage && !closed).then(|| view! {
            <section class="card">
                <h2>"Status"</h2>
                {outcome(set_status, "Status changed.")}
                <div class="row">
                    {transitions.into_iter().map(|(to, label)| view! {
                        <ActionForm action=set_status>
                            <input type="hidden" name="id" value=id.to_string()/>
                            <input type="hidden" name="status" value=to.as_str()/>
                            <button type="submit" class=format!("status-{to}")>{label}</button>
                        </ActionForm>
                    }).collect_view()}
                    // Closing cannot be undone: the first click only asks.
                    {can_close.then(|| view! {
                        <button type="button" class="status-closed" id="close-campaign"
                            on:click=move |_| confirming_close.set(true)>"Close…"</button>
                    })}
                </div>
                {move || confirming_close.get().then(|| view! {
                    <div class="confirm" role="alertdialog" aria-labelledby="close-question">
                        <p id="close-question">"Close this campaign? Labelers stop getting items at once, and it cannot be reopened. Judgments already made stay and can be exported."</p>
                        <div class="row">
                            <ActionForm action=set_status>
                                <input type="hidden" name="id" value=id.to_string()/>
                                <input type="hidden" name="status" value="closed"/>
                                <button type="submit" class="danger" id="confirm-close">"Yes, close it"</button>
                            </ActionForm>
                            <button type="button" on:click=move |_| confirming_close.set(false)>"Cancel"</button>
                        </div>
                    </div>
                })}
                <p class="hint">"Overlap " {c.overlap} " · strength scale " {c.strength_scale}
                   " · rationale " {c.rationale.as_str()} " · tie " {if c.allow_tie { "allowed" } else { "off" }}
                   " · both bad " {if c.allow_both_bad { "allowed" } else { "off" }}
                   " · answers can be changed " {if c.undo_seconds > 0 { format!("for {}", domain::words::duration(c.undo_seconds)) } else { "never".into() }}</p>
            </section>
        })}
        {v.stats.clone().map(|s| view! {
            <section class="card">
                <h2>"Progress"</h2>
                <div class="meter"><div class="fill" style=format!("width: {:.1}%", s.completion * 100.0)></div></div>
                <p id="campaign-progress">
                    {format!("{:.1}% complete", s.completion * 100.0)} " · " {count(s.items, "item")} " (" {s.gold_items} " gold) · "
                    {s.items_complete} " complete · " <span id="judgment-count">{s.judgments}</span> {if s.judgments == 1 { " judgment · " } else { " judgments · " }} {count(s.skips, "skip")}
                </p>
                <p class="hint">"A better " {s.choices.a} " · B better " {s.choices.b} " · tie " {s.choices.tie} " · both bad " {s.choices.both_bad}</p>
                <table class="list">
                    <thead><tr><th>"Labeler"</th><th>"Judgments"</th><th>"Skips"</th><th>"Gold accuracy"</th><th>"Median time"</th><th>"Left chosen"</th></tr></thead>
                    <tbody>
                        {s.labelers.into_iter().map(|l| view! {
                            <tr>
                                <td>{l.email.unwrap_or(l.labeler)}</td>
                                <td>{l.judgments}</td>
                                <td>{l.skips}</td>
                                <td>{if l.gold_seen > 0 { format!("{}/{}", l.gold_correct, l.gold_seen) } else { "–".into() }}</td>
                                <td>{l.median_time_ms.map(|t| format!("{:.1} s", t / 1000.0)).unwrap_or_else(|| "–".into())}</td>
                                <td>{l.left_share.map(|x| format!("{:.0}%", x * 100.0)).unwrap_or_else(|| "–".into())}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {v.can_manage.then(|| {
            let c = c.clone();
            view! {
                <section class="card" id="settings">
                    <h2>"Settings"</h2>
                    {outcome(update, "Settings saved.")}
                    {(judgments > 0).then(|| view! {
                        <p class="hint" id="settings-note">{format!(
                            "{} already made keep their answers: changed options apply from now on; a higher overlap reopens complete items for more labelers, a lower one leaves judged items as they are.",
                            count(judgments, "judgment")
                        )}</p>
                    })}
                    <ActionForm action=update>
                        <input type="hidden" name="id" value=id.to_string()/>
                        <label>"Name" <input name="name" id="settings-name" required maxlength="200" value=c.name.clone()/></label>
                        <label>"Guidelines (markdown)" <FormTextarea name="guidelines" rows=6 value=c.guidelines.clone()/></label>
                        <CampaignOptionFields settings=c.settings() prefix="settings"/>
                        <button type="submit" class="primary" id="save-settings">"Save settings"</button>
                    </ActionForm>
                </section>
            }
        })}
        {v.can_manage.then(|| view! {
            <section class="card">
                <h2>"Members"</h2>
                {outcome(add, "Member added.")}
                {outcome(remove, "Member removed. Their judgments stay.")}
                <ul class="members">
                    {v.members.into_iter().map(|m| view! {
                        <li>{m.email.clone()} " · " {m.role.as_str()} " "
                            <ActionForm action=remove attr:class="inline">
                                <input type="hidden" name="id" value=id.to_string()/>
                                <input type="hidden" name="user_id" value=m.user_id.to_string()/>
                                <button type="submit" class="link remove-member" aria-label=format!("Remove {}", m.email)>"Remove"</button>
                            </ActionForm>
                        </li>
                    }).collect_view()}
                </ul>
                <ActionForm action=add>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <div class="row">
                        <input type="email" name="email" placeholder="e-mail of an existing user" aria-label="Member's e-mail" required/>
                        <select name="role" aria-label="Member's role">
                            <option value="labeler">"labeler"</option>
                            <option value="researcher">"researcher"</option>
                        </select>
                        <button type="submit">"Add member"</button>
                    </div>
                </ActionForm>
            </section>
        })}
        {(v.can_manage && !closed).then(|| view! {
            <section class="card">
                <h2>"Generate candidates"</h2>
                <p class="hint">"Add prompts without responses and let a registered model write K candidates per prompt."</p>
                <a class="button" id="open-generation" href=format!("/campaigns/{id}/generate")>"Prompts and generation"</a>
            </section>
            <section class="card">
                <h2>"Import items"</h2>
                <p class="hint">"One JSON object per line: "
                    <code>"{\"prompt\": \"…\", \"responses\": [\"…\", \"…\"]}"</code>
                    " (prompt may be a list of {role, content} messages; optional metadata and gold). Or CSV with prompt, response_a, response_b columns. Nothing is written if any line is invalid. Large files: use the API or "
                    <code>"pairwise import"</code> "."</p>
                {import_result(import)}
                <ActionForm action=import node_ref=import_form>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <FormTextarea name="text" rows=8 id="import-text" placeholder="paste JSONL or CSV here" aria_label="Items to import"/>
                    <div class="row">
                        <select name="format" aria-label="Import format">
                            <option value="jsonl">"JSONL"</option>
                            <option value="csv">"CSV"</option>
                        </select>
                        <button type="submit" class="primary" disabled=move || import.pending().get()>"Import"</button>
                    </div>
                </ActionForm>
            </section>
        })}
        {v.can_manage.then(|| {
            let archived = c.archived;
            view! {
                <section class="card" id="archive-or-delete">
                    <h2>"Archive or delete"</h2>
                    {outcome(archive, "Archive updated.")}
                    {move || action_error(&delete.value().get())}
                    <div class="row">
                        {if closed {
                            view! {
                                <ActionForm action=archive>
                                    <input type="hidden" name="id" value=id.to_string()/>
                                    <input type="hidden" name="archived" value=(!archived).to_string()/>
                                    <button type="submit" id="archive-campaign">{if archived { "Take out of the archive" } else { "Archive" }}</button>
                                </ActionForm>
                            }.into_any()
                        } else {
                            view! { <p class="hint">"Close the campaign to archive it: the list then shows it apart, its data kept."</p> }.into_any()
                        }}
                        <button type="button" id="delete-campaign" on:click=move |_| confirming_delete.set(true)>"Delete…"</button>
                    </div>
                    {move || confirming_delete.get().then(|| view! {
                        <div class="confirm" role="alertdialog" aria-labelledby="delete-question">
                            <p id="delete-question">{if judgments > 0 {
                                format!("Delete this campaign with its items and {}? This cannot be undone; archiving keeps them instead.", count(judgments, "judgment"))
                            } else {
                                "Delete this campaign and its items? This cannot be undone.".to_string()
                            }}</p>
                            <ActionForm action=delete>
                                <input type="hidden" name="id" value=id.to_string()/>
                                {(judgments > 0).then(|| view! {
                                    <label class="check"><input type="checkbox" name="with_judgments" value="on" id="delete-judgments"/> "Delete its judgments too"</label>
                                })}
                                <div class="row">
                                    <button type="submit" class="danger" id="confirm-delete">"Yes, delete it"</button>
                                    <button type="button" on:click=move |_| confirming_delete.set(false)>"Cancel"</button>
                                </div>
                            </ActionForm>
                        </div>
                    })}
                </section>
            }
        })}
    }
}

fn import_result(action: ServerAction<ImportText>) -> impl IntoView {
    move || {
        action.value().get().map(|r| {
            import_outcome(r, "import-report", "import-report", |report| {
                let mut said = format!(
                    "Imported {} as {}.",
                    count(report.imported as i64, "prompt"),
                    count(report.items as i64, "item")
                );
                said.push_str(&import_notes(report));
                said
            })
        })
    }
}

/// What an import left out, as sentences to follow the count: lines whose id was already
/// there, pairs whose two responses were the same.
pub fn import_notes(report: &ImportReport) -> String {
    let mut notes = String::new();
    if report.skipped > 0 {
        let lines: Vec<String> = report
            .skipped_lines
            .iter()
            .take(5)
            .map(|l| l.line.to_string())
            .collect();
        let more = if report.skipped as usize > lines.len() {
            ", …"
        } else {
            ""
        };
        notes.push_str(&format!(
            " Skipped {} already in this campaign (same id; line {}{more}).",
            count(report.skipped as i64, "line"),
            lines.join(", ")
        ));
    }
    if report.identical_pairs > 0 {
        notes.push_str(&format!(
            " Left out {} whose two responses were the same.",
            count(report.identical_pairs as i64, "pair")
        ));
    }
    notes
}

/// An import's outcome as both import forms show it: what was imported, or every bad line
/// by number (nothing was imported then).
pub fn import_outcome(
    result: Result<ImportReport, AppError>,
    ok_id: &'static str,
    error_id: &'static str,
    imported: fn(&ImportReport) -> String,
) -> AnyView {
    match result {
        Err(e) => error_notice(&e),
        Ok(report) if report.error_count == 0 => {
            view! { <p class="ok" id=ok_id>{imported(&report)}</p> }.into_any()
        }
        Ok(report) => view! {
            <div class="error" id=error_id>
                <p>{count(report.error_count as i64, "invalid line")} "; nothing was imported."</p>
                <ul>
                    {report.errors.into_iter().map(|e| view! { <li>"line " {e.line} ": " {e.message}</li> }).collect_view()}
                </ul>
            </div>
        }
        .into_any(),
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let invite = ServerAction::<InviteUser>::new();
    let toggle = ServerAction::<SetUserDisabled>::new();
    let users = Resource::new(
        move || (invite.version().get(), toggle.version().get()),
        |_| list_users(),
    );
    view! {
        <RequireLogin>
            <h1>"Users"</h1>
            // Only admins manage users: others see why, not a form the server would refuse.
            <Show when=|| signed_in().is_some_and(|u| u.is_admin())
                  fallback=|| view! { <ErrorNotice error=AppError::Forbidden("admins only".into())/> }>
            <section class="card">
                <h2>"Invite"</h2>
                <ActionForm action=invite>
                    <div class="row">
                        <input type="email" name="email" placeholder="e-mail" aria-label="E-mail" required/>
                        <select name="role" aria-label="Role">
                            <option value="labeler">"labeler"</option>
                            <option value="researcher">"researcher"</option>
                            <option value="admin">"admin"</option>
                        </select>
                        <button type="submit" class="primary">"Create invitation"</button>
                    </div>
                </ActionForm>
                {move || invite.value().get().map(|r| match r {
                    Ok(path) => invite_link(absolute(&path)).into_any(),
                    Err(e) => error_notice(&e),
                })}
            </section>
            {outcome(toggle, "User updated.")}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || users.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(list) => view! {
                        <table class="list">
                            <thead><tr><th>"E-mail"</th><th>"Role"</th><th>"State"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|u| view! {
                                    <tr>
                                        <td>{u.email.clone()}</td>
                                        <td>{u.role.as_str()}</td>
                                        <td>{if u.disabled { "disabled" } else if u.has_password { "active" } else { "invited" }}</td>
                                        <td>
                                            <ActionForm action=toggle>
                                                <input type="hidden" name="id" value=u.id.to_string()/>
                                                <input type="hidden" name="disabled" value=(!u.disabled).to_string()/>
                                                <button type="submit">{if u.disabled { "Enable" } else { "Disable" }}</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Suspense>
            </Show>
        </RequireLogin>
    }
}

/// `path` with this site's origin before it, as a link to send by e-mail.
fn absolute(path: &str) -> String {
    #[cfg(feature = "hydrate")]
    if let Ok(origin) = window().location().origin() {
        return format!("{origin}{path}");
    }
    path.to_string()
}

/// The whole invitation link, selectable, with a button that copies it.
fn invite_link(link: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    // The page's copy of the link (the button needs it only in the browser).
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let target = link.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let _ = window().navigator().clipboard().write_text(&target);
        }
        copied.set(true);
    };
    view! {
        <div class="ok invite">
            <p>"Send this one-time link (valid 7 days):"</p>
            <div class="row">
                <input id="invite-link" readonly value=link.clone() aria-label="invitation link" size="60"/>
                <button type="button" id="copy-invite" on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
        </div>
    }
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let secret = params.read_untracked().get("secret").unwrap_or_default();
    let email = Resource::new(
        {
            let secret = secret.clone();
            move || secret.clone()
        },
        invite_email,
    );
    let weak = move || query.read().get("error").is_some();
    view! {
        <section class="card narrow">
            <h1>"Welcome to Pairwise"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || email.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(email) => view! {
                        <p>"Choose a password for " <strong>{email}</strong> "."</p>
                        {move || weak().then(|| view! { <p class="error">"Use at least 10 characters."</p> })}
                        <form method="post" action=format!("/auth/invite/{}", secret.clone())>
                            <label>"Password" <input type="password" name="password" minlength="10" required autocomplete="new-password"/></label>
                            <button type="submit" class="primary">"Set password and sign in"</button>
                        </form>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
