//! The item browser (admins and researchers): a campaign's items, searched and filtered, a
//! page at a time, and one item with its responses and every judgment on it.

use domain::{Choice, ItemDetail};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

use crate::api::*;
use crate::errors::error_notice;
use crate::pages::{campaign_id, NotFoundPage, PromptView, RequireLogin};
use domain::words::count;

/// The browser's filters, as they stand in the address (so a filtered page can be linked).
#[derive(Debug, Clone, PartialEq, Default)]
struct Filters {
    q: String,
    status: String,
    agreement: String,
    gold: String,
    cursor: String,
}

impl Filters {
    /// The same filters at another cursor, as a query string.
    fn at(&self, cursor: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.q)
            .append_pair("status", &self.status)
            .append_pair("agreement", &self.agreement)
            .append_pair("gold", &self.gold)
            .append_pair("cursor", cursor)
            .finish()
    }
}

fn select(
    name: &'static str,
    label: &'static str,
    current: String,
    options: &[(&'static str, &'static str)],
) -> impl IntoView {
    let options = options.to_vec();
    view! {
        <label>{label}
            <select name=name>
                {options.into_iter().map(|(value, text)| view! {
                    <option value=value selected=current == value>{text}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn ItemsPage() -> impl IntoView {
    let Some(id) = campaign_id() else {
        return view! { <NotFoundPage/> }.into_any();
    };
    let query = use_query_map();
    let filters = move || {
        let q = query.read();
        let get = |name: &str| q.get(name).unwrap_or_default();
        Filters {
            q: get("q"),
            status: get("status"),
            agreement: get("agreement"),
            gold: get("gold"),
            cursor: get("cursor"),
        }
    };
    let page = Resource::new(filters, move |f| {
        list_items(id, f.q, f.status, f.agreement, f.gold, f.cursor)
    });
    view! {
        <RequireLogin>
            <div class="row spread">
                <h1>"Items"</h1>
                <a href=format!("/campaigns/{id}")>"Back to the campaign"</a>
            </div>
            {move || {
                let f = filters();
                view! {
                    <form method="get" class="card filters" role="search">
                        <div class="row">
                            <label>"Text in the prompt or a response"
                                <input type="search" name="q" value=f.q.clone()/>
                            </label>
                            {select("status", "Status", f.status.clone(), &[("", "any"), ("unjudged", "unjudged"), ("partial", "partly judged"), ("complete", "complete")])}
                            {select("agreement", "Agreement", f.agreement.clone(), &[("", "any"), ("unanimous", "unanimous"), ("disputed", "disputed")])}
                            {select("gold", "Gold", f.gold.clone(), &[("", "any"), ("true", "gold only"), ("false", "regular only")])}
                            <button type="submit" class="primary">"Filter"</button>
                        </div>
                    </form>
                }
            }}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || page.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(page) if page.items.is_empty() => view! {
                        <p class="notice" id="no-items">"No items match these filters."</p>
                    }.into_any(),
                    Ok(page) => {
                        let f = filters();
                        view! {
                            <table class="list items">
                                <thead><tr><th>"Prompt"</th><th>"Status"</th><th>"Judgments"</th><th>"Agreement"</th><th>"Gold"</th></tr></thead>
                                <tbody>
                                    {page.items.into_iter().map(|item| view! {
                                        <tr class="item-row">
                                            <td><a href=format!("/items/{}", item.id)>{if item.prompt.is_empty() { "(empty prompt)".to_string() } else { item.prompt.clone() }}</a></td>
                                            <td>{item.status.as_str()}</td>
                                            <td>{item.judgments} {(item.skips > 0).then(|| format!(" ({})", count(item.skips, "skip")))}</td>
                                            <td>{item.agreement.map(|a| format!("{:.0}%", a * 100.0)).unwrap_or_else(|| "–".into())}</td>
                                            <td>{if item.is_gold { "gold" } else { "" }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <p class="row">
                                {(!f.cursor.is_empty()).then(|| view! { <a href=format!("?{}", f.at(""))>"First page"</a> })}
                                {page.next_cursor.map(|next| view! { <a id="next-page" href=format!("?{}", f.at(&next))>"Next page"</a> })}
                            </p>
                        }.into_any()
                    }
                })}
            </Suspense>
        </RequireLogin>
    }
    .into_any()
}

/// A response's place in the item ("Response 1"), from its id.
fn response_name(item: &ItemDetail, id: Option<Uuid>) -> String {
    id.and_then(|id| item.responses.iter().position(|r| r.id == id))
        .map(|i| format!("Response {}", i + 1))
        .unwrap_or_else(|| "–".into())
}

fn verdict(item: &ItemDetail, choice: Choice, winner: Option<Uuid>) -> String {
    match choice {
        Choice::A | Choice::B => format!("{} better", response_name(item, winner)),
        Choice::Tie => "tie".into(),
        Choice::BothBad => "both bad".into(),
        Choice::Skip => "skipped".into(),
    }
}

#[component]
pub fn ItemPage() -> impl IntoView {
    let params = use_params_map();
    let Some(id) = params
        .read_untracked()
        .get("id")
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return view! { <NotFoundPage/> }.into_any();
    };
    let item = Resource::new(move || id, get_item);
    view! {
        <RequireLogin>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || item.get().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(view) => item_body(view).into_any(),
                })}
            </Suspense>
        </RequireLogin>
    }
    .into_any()
}

fn item_body(view: ItemView) -> impl IntoView {
    let item = view.item;
    let campaign = item.campaign_id;
    let judgments: Vec<_> = item
        .judgments
        .iter()
        .map(|j| {
            (
                j.email.clone().unwrap_or_else(|| j.labeler.clone()),
                verdict(&item, j.choice, j.winner_candidate_id),
                j.strength,
                j.rationale.clone().unwrap_or_default(),
                j.time_on_task_ms,
                j.created_at.clone(),
                // Answers the labeler changed afterwards, oldest first.
                j.revisions
                    .iter()
                    .map(|r| verdict(&item, r.choice, r.winner_candidate_id))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let skips = item
        .judgments
        .iter()
        .filter(|j| j.choice == Choice::Skip)
        .count() as i64;
    let answered = item.judgments.len() as i64 - skips;
    let gold = item.is_gold.then(|| match item.gold_candidate_id {
        Some(id) => format!(
            "Gold item: the known answer is {}.",
            response_name(&item, Some(id))
        ),
        None => "Gold item: the known answer is a tie.".to_string(),
    });
    view! {
        <div class="row spread">
            <h1>"Item"</h1>
            <a href=format!("/campaigns/{campaign}/items")>"Back to the items"</a>
        </div>
        <p class="hint">{item.status.as_str()} " · " {count(answered, "judgment")}
            {(skips > 0).then(|| format!(" · {}", count(skips, "skip")))}
            {item.agreement.map(|a| format!(" · agreement {:.0}%", a * 100.0))}</p>
        {gold.map(|g| view! { <p class="notice">{g}</p> })}
        <PromptView messages=view.prompt card=true/>
        <section class="responses">
            {view.responses_html.into_iter().enumerate().map(|(i, html)| view! {
                <div class="response">
                    <h3>"Response " {i + 1}</h3>
                    <div class="body markdown" tabindex="0" inner_html=html></div>
                </div>
            }).collect_view()}
        </section>
        <section class="card">
            <h2>"Judgments"</h2>
            {if judgments.is_empty() {
                view! { <p class="notice">"No judgments yet."</p> }.into_any()
            } else {
                view! {
                    <table class="list judgments">
                        <thead><tr><th>"Labeler"</th><th>"Answer"</th><th>"Strength"</th><th>"Rationale"</th><th>"Time"</th><th>"When"</th></tr></thead>
                        <tbody>
                            {judgments.into_iter().map(|(who, answer, strength, rationale, time, at, earlier)| view! {
                                <tr>
                                    <td>{who}</td>
                                    <td>{answer}
                                        {(!earlier.is_empty()).then(|| view! {
                                            <div class="hint changed">{format!("changed from {}", earlier.join(", then "))}</div>
                                        })}</td>
                                    <td>{strength.map(|s| s.to_string()).unwrap_or_else(|| "–".into())}</td>
                                    <td>{rationale}</td>
                                    <td>{time.map(|t| format!("{:.1} s", f64::from(t) / 1000.0)).unwrap_or_else(|| "–".into())}</td>
                                    <td>{at}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
