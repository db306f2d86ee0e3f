//! Navigation, sign-in, the campaign list, campaign administration and user administration.

use domain::{CampaignStatus, ImportReport, Role};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

use crate::api::*;
use crate::words::count;

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
                        {(user.role != Role::Labeler).then(|| view! { <a href="/exports">"Exports"</a> })}
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

/// Shows the error of a failed server call, or nothing.
pub(crate) fn error_text<T>(result: &Option<Result<T, ServerFnError>>) -> Option<String> {
    match result {
        Some(Err(e)) => Some(clean_error(e)),
        _ => None,
    }
}

pub(crate) fn clean_error(e: &ServerFnError) -> String {
    let text = e.to_string();
    text.rsplit_once(": ")
        .map(|(_, m)| m.to_string())
        .unwrap_or(text)
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
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            {move || error().map(|e| view! { <p class="error">{e}</p> })}
            <form method="post" action="/auth/login">
                <input type="hidden" name="next" value=next/>
                <label>"E-mail" <input type="email" name="email" required autocomplete="username" autofocus/></label>
                <label>"Password" <input type="password" name="password" required autocomplete="current-password"/></label>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </section>
    }
}

/// A `<textarea>` set as inner HTML, so hydration never walks into it: tachys 0.2 mis-hydrates
/// server-rendered textareas (leptos-rs/leptos#4818) and the whole page would stay inert.
/// Arguments are literals of this crate, never user data.
#[component]
pub(crate) fn FormTextarea(
    name: &'static str,
    rows: u32,
    #[prop(optional)] id: Option<&'static str>,
    #[prop(optional)] placeholder: Option<&'static str>,
) -> impl IntoView {
    let mut html = format!(r#"<textarea name="{name}" rows="{rows}""#);
    if let Some(id) = id {
        html.push_str(&format!(r#" id="{id}""#));
    }
    if let Some(placeholder) = placeholder {
        html.push_str(&format!(r#" placeholder="{placeholder}""#));
    }
    html.push_str("></textarea>");
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

/// Sends visitors who are not signed in to the login page.
#[component]
pub(crate) fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r.ok().flatten() {
                Some(_) => children.read_value()().into_any(),
                None => view! { <Redirect path="/login"/> }.into_any(),
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
                    Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="notice">"No campaigns yet. Admins create them; labelers see the ones they were added to."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="list">
                            <thead><tr><th>"Name"</th><th>"Status"</th><th>"Overlap"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|row| {
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
                    }.into_any(),
                })}
            </Suspense>
        </RequireLogin>
    }
}

#[component]
pub fn NewCampaignPage() -> impl IntoView {
    let create = ServerAction::<CreateCampaign>::new();
    view! {
        <RequireLogin>
            <section class="card">
                <h1>"New campaign"</h1>
                {move || error_text(&create.value().get()).map(|e| view! { <p class="error">{e}</p> })}
                <ActionForm action=create>
                    <label>"Name" <input name="name" required maxlength="200"/></label>
                    <label>"Guidelines (markdown)" <FormTextarea name="guidelines" rows=6/></label>
                    <div class="row">
                        <label>"Labelers per item (overlap)" <input type="number" name="overlap" value="1" min="1" max="100"/></label>
                        <label>"Strength scale (0 = off)" <input type="number" name="strength_scale" value="0" min="0" max="10"/></label>
                        <label>"Rationale"
                            <select name="rationale">
                                <option value="optional">"optional"</option>
                                <option value="required">"required"</option>
                                <option value="off">"off"</option>
                            </select>
                        </label>
                    </div>
                    <label class="check"><input type="checkbox" name="allow_tie" value="on" checked/> "Allow tie"</label>
                    <label class="check"><input type="checkbox" name="allow_both_bad" value="on" checked/> "Allow both bad"</label>
                    <button type="submit" class="primary">"Create"</button>
                </ActionForm>
            </section>
        </RequireLogin>
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
        return view! { <p class="notice">"Page not found."</p> }.into_any();
    };
    let set_status = ServerAction::<SetCampaignStatus>::new();
    let add = ServerAction::<AddMember>::new();
    let import = ServerAction::<ImportText>::new();
    let view_data = Resource::new(
        move || {
            (
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
                    Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
                    Ok(v) => campaign_body(v, set_status, add, import).into_any(),
                })}
            </Suspense>
        </RequireLogin>
    }
    .into_any()
}

fn campaign_body(
    v: CampaignView,
    set_status: ServerAction<SetCampaignStatus>,
    add: ServerAction<AddMember>,
    import: ServerAction<ImportText>,
) -> impl IntoView {
    let c = v.campaign.clone();
    let id = c.id;
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
    .filter(|(to, _)| c.status.can_become(*to))
    .collect();
    view! {
        <div class="row spread">
            <h1>{c.name.clone()} " " <span class=format!("badge {}", c.status)>{c.status.as_str()}</span></h1>
            {v.can_label.then(|| view! {
                <a class="button primary" id="start-labeling" href=format!("/campaigns/{id}/label")>"Start labeling"</a>
            })}
        </div>
        {v.progress.map(|p| view! {
            <p class="progress-line">{match (p.done, p.skipped) {
                (0, 0) => "You have not judged any items yet.".to_string(),
                (done, 0) => format!("You have judged {}.", count(done, "item")),
                (done, skipped) => format!("You have judged {} and skipped {skipped}.", count(done, "item")),
            }}</p>
        })}
        <details open=c.guidelines.is_empty().then_some("").is_none()>
            <summary>"Guidelines"</summary>
            <div class="markdown" inner_html=v.guidelines_html.clone()></div>
        </details>
        {v.can_manage.then(|| view! {
            <section class="card">
                <h2>"Status"</h2>
                {move || error_text(&set_status.value().get()).map(|e| view! { <p class="error">{e}</p> })}
                <div class="row">
                    {transitions.into_iter().map(|(to, label)| view! {
                        <ActionForm action=set_status>
                            <input type="hidden" name="id" value=id.to_string()/>
                            <input type="hidden" name="status" value=to.as_str()/>
                            <button type="submit" class=format!("status-{to}")>{label}</button>
                        </ActionForm>
                    }).collect_view()}
                </div>
                <p class="hint">"Overlap " {c.overlap} " · strength scale " {c.strength_scale}
                   " · rationale " {c.rationale.as_str()} " · tie " {if c.allow_tie { "allowed" } else { "off" }}
                   " · both bad " {if c.allow_both_bad { "allowed" } else { "off" }}</p>
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
        {v.can_manage.then(|| view! {
            <section class="card">
                <h2>"Members"</h2>
                {move || error_text(&add.value().get()).map(|e| view! { <p class="error">{e}</p> })}
                <ul class="members">
                    {v.members.into_iter().map(|m| view! { <li>{m.email} " · " {m.role.as_str()}</li> }).collect_view()}
                </ul>
                <ActionForm action=add>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <div class="row">
                        <input type="email" name="email" placeholder="e-mail of an existing user" required/>
                        <select name="role">
                            <option value="labeler">"labeler"</option>
                            <option value="researcher">"researcher"</option>
                        </select>
                        <button type="submit">"Add member"</button>
                    </div>
                </ActionForm>
            </section>
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
                <ActionForm action=import>
                    <input type="hidden" name="id" value=id.to_string()/>
                    <FormTextarea name="text" rows=8 id="import-text" placeholder="paste JSONL or CSV here"/>
                    <div class="row">
                        <select name="format">
                            <option value="jsonl">"JSONL"</option>
                            <option value="csv">"CSV"</option>
                        </select>
                        <button type="submit" class="primary">"Import"</button>
                    </div>
                </ActionForm>
            </section>
        })}
    }
}

fn import_result(action: ServerAction<ImportText>) -> impl IntoView {
    move || {
        action.value().get().map(|r| {
            import_outcome(r, "import-report", "import-report", |report| {
                format!(
                    "Imported {} as {}.",
                    count(report.imported as i64, "prompt"),
                    count(report.items as i64, "item")
                )
            })
        })
    }
}

/// An import's outcome as both import forms show it: what was imported, or every bad line
/// by number (nothing was imported then).
pub fn import_outcome(
    result: Result<ImportReport, ServerFnError>,
    ok_id: &'static str,
    error_id: &'static str,
    imported: fn(&ImportReport) -> String,
) -> AnyView {
    match result {
        Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
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
            <section class="card">
                <h2>"Invite"</h2>
                <ActionForm action=invite>
                    <div class="row">
                        <input type="email" name="email" placeholder="e-mail" required/>
                        <select name="role">
                            <option value="labeler">"labeler"</option>
                            <option value="researcher">"researcher"</option>
                            <option value="admin">"admin"</option>
                        </select>
                        <button type="submit" class="primary">"Create invitation"</button>
                    </div>
                </ActionForm>
                {move || invite.value().get().map(|r| match r {
                    Ok(path) => view! {
                        <p class="ok">"Send this one-time link (valid 7 days): " <code id="invite-link">{path}</code></p>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
                })}
            </section>
            {move || error_text(&toggle.value().get()).map(|e| view! { <p class="error">{e}</p> })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || users.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
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
        </RequireLogin>
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
                    Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
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
