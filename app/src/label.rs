//! The labeling page: prompt and two responses side by side, answered from the keyboard.
//! The next item is fetched while the current one is on screen, so it appears at once.

use domain::{Choice, JudgmentRules, RationalePolicy};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use uuid::Uuid;

use crate::api::*;

fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// The page's state; every field is a signal, so the whole struct is `Copy`.
#[derive(Clone, Copy)]
struct Labeler {
    campaign: Uuid,
    rules: StoredValue<Option<JudgmentRules>>,
    current: RwSignal<Option<LabelItem>>,
    queued: RwSignal<Option<LabelItem>>,
    finished: RwSignal<bool>,
    busy: RwSignal<bool>,
    done: RwSignal<i64>,
    strength: RwSignal<Option<i32>>,
    rationale: RwSignal<String>,
    message: RwSignal<Option<String>>,
    shown_at: StoredValue<f64>,
    rationale_box: NodeRef<leptos::html::Textarea>,
}

impl Labeler {
    /// Puts `item` on screen and fetches the one after it.
    fn show(self, item: Option<LabelItem>) {
        self.put_on_screen(item);
        self.prefetch();
    }

    fn put_on_screen(self, item: Option<LabelItem>) {
        self.finished.set(item.is_none());
        if let Some(item) = &item {
            // A prefetched item carries the count from when it was fetched, one judgment ago.
            self.done
                .update(|done| *done = (*done).max(item.progress.done));
        }
        self.current.set(item);
        self.strength.set(None);
        self.rationale.set(String::new());
        self.shown_at.set_value(now_ms());
    }

    /// Loads the item after the one on screen into `queued`.
    fn prefetch(self) {
        let Some(current) = self.current.get_untracked().map(|c| c.assignment_id) else {
            return;
        };
        spawn_local(async move {
            if let Ok(next) = next_item(self.campaign, Some(current)).await {
                let still_current =
                    self.current.get_untracked().map(|c| c.assignment_id) == Some(current);
                if still_current && next.as_ref().map(|n| n.assignment_id) != Some(current) {
                    self.queued.set(next);
                }
            }
        });
    }

    fn load_first(self) {
        spawn_local(async move {
            match next_item(self.campaign, None).await {
                Ok(item) => self.show(item),
                Err(e) => self.message.set(Some(e.to_string())),
            }
        });
    }

    fn answer(self, choice: Choice) {
        let Some(item) = self.current.get_untracked() else {
            return;
        };
        if self.busy.get_untracked() {
            return;
        }
        let rules = self.rules.get_value();
        let rationale = self.rationale.get_untracked();
        if choice != Choice::Skip
            && rules.map(|r| r.rationale) == Some(RationalePolicy::Required)
            && rationale.trim().is_empty()
        {
            self.message.set(Some(
                "This campaign asks for a rationale: write one, then press Esc and choose again."
                    .into(),
            ));
            if let Some(el) = self.rationale_box.get_untracked() {
                let _ = el.focus();
            }
            return;
        }
        let decisive = matches!(choice, Choice::A | Choice::B);
        let strength = if decisive {
            self.strength.get_untracked()
        } else {
            None
        };
        let rationale = Some(rationale).filter(|r| !r.trim().is_empty());
        let time_on_task = Some((now_ms() - self.shown_at.get_value()).max(0.0) as i32);
        self.busy.set(true);
        self.message.set(None);
        // The answer brings the item after the one held in reserve: one request per item.
        let reserve = self.queued.get_untracked().map(|q| q.assignment_id);
        spawn_local(async move {
            match submit_judgment(
                item.assignment_id,
                choice,
                strength,
                rationale,
                time_on_task,
                reserve,
            )
            .await
            {
                Ok(answer) => {
                    self.done.set(answer.ack.progress.done);
                    let queued = self.queued.try_update(Option::take).flatten();
                    match (queued, answer.next) {
                        (Some(queued), next) => {
                            let shown = queued.assignment_id;
                            self.put_on_screen(Some(queued));
                            // A prefetch that landed after the submit left could be this one.
                            match next.filter(|n| n.assignment_id != shown) {
                                Some(next) => self.queued.set(Some(next)),
                                None => self.prefetch(),
                            }
                        }
                        (None, Some(next)) => self.show(Some(next)),
                        // Nothing came back: ask, which also tells why (finished, paused).
                        (None, None) => match next_item(self.campaign, None).await {
                            Ok(next) => self.show(next),
                            Err(e) => self.message.set(Some(e.to_string())),
                        },
                    }
                }
                Err(e) => self.message.set(Some(e.to_string())),
            }
            self.busy.set(false);
        });
    }

    fn on_key(self, ev: leptos::ev::KeyboardEvent) {
        use wasm_bindgen::JsCast;
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|el| matches!(el.tag_name().as_str(), "TEXTAREA" | "INPUT" | "SELECT"))
            .unwrap_or(false);
        if typing {
            if ev.key() == "Escape" {
                if let Some(el) = self.rationale_box.get_untracked() {
                    let _ = el.blur();
                }
            }
            return;
        }
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let rules = self.rules.get_value();
        let choice = match ev.key().as_str() {
            "a" | "A" | "ArrowLeft" => Some(Choice::A),
            "b" | "B" | "ArrowRight" => Some(Choice::B),
            "t" | "T" if rules.is_some_and(|r| r.allow_tie) => Some(Choice::Tie),
            "x" | "X" if rules.is_some_and(|r| r.allow_both_bad) => Some(Choice::BothBad),
            "s" | "S" => Some(Choice::Skip),
            "r" | "R" => {
                if let Some(el) = self.rationale_box.get_untracked() {
                    ev.prevent_default();
                    let _ = el.focus();
                }
                None
            }
            digit => {
                if let (Ok(n), Some(r)) = (digit.parse::<i32>(), rules) {
                    if (1..=r.strength_scale).contains(&n) {
                        self.strength.set(Some(n));
                    }
                }
                None
            }
        };
        if let Some(choice) = choice {
            ev.prevent_default();
            self.answer(choice);
        }
    }
}

#[component]
pub fn LabelPage() -> impl IntoView {
    let params = use_params_map();
    let Some(campaign) = params
        .read_untracked()
        .get("id")
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return view! { <p class="notice">"Page not found."</p> }.into_any();
    };
    let context = Resource::new(move || campaign, get_label_context);
    let state = Labeler {
        campaign,
        rules: StoredValue::new(None),
        current: RwSignal::new(None),
        queued: RwSignal::new(None),
        finished: RwSignal::new(false),
        busy: RwSignal::new(false),
        done: RwSignal::new(0),
        strength: RwSignal::new(None),
        rationale: RwSignal::new(String::new()),
        message: RwSignal::new(None),
        shown_at: StoredValue::new(0.0),
        rationale_box: NodeRef::new(),
    };
    // Effects run only in the browser, after hydration: the page is inert until then.
    Effect::new(move |_| {
        if let Some(Ok(ctx)) = context.get() {
            state.rules.set_value(Some(ctx.rules));
            state.done.set(ctx.progress.done);
            if state.current.get_untracked().is_none() {
                state.load_first();
            }
        }
    });
    Effect::new(move |_| {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| state.on_key(ev));
        on_cleanup(move || handle.remove());
    });
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || context.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                Ok(ctx) => label_body(state, ctx).into_any(),
            })}
        </Suspense>
    }
    .into_any()
}

fn label_body(state: Labeler, ctx: LabelContext) -> impl IntoView {
    let rules = ctx.rules;
    let strengths: Vec<i32> = (1..=rules.strength_scale).collect();
    view! {
        <div class="row spread">
            <h1>{ctx.name.clone()}</h1>
            <p class="progress-line">"Judged: " <strong id="my-progress">{move || state.done.get()}</strong>
               " · " <a href=format!("/campaigns/{}", state.campaign)>"campaign"</a></p>
        </div>
        <details class="guidelines">
            <summary>"Guidelines"</summary>
            <div class="markdown" inner_html=ctx.guidelines_html.clone()></div>
        </details>
        <p class="keys">
            <kbd>"A"</kbd>"/"<kbd>"←"</kbd>" left better · " <kbd>"B"</kbd>"/"<kbd>"→"</kbd>" right better · "
            {rules.allow_tie.then(|| view! { <kbd>"T"</kbd>" tie · " })}
            {rules.allow_both_bad.then(|| view! { <kbd>"X"</kbd>" both bad · " })}
            <kbd>"S"</kbd>" skip"
            {(rules.strength_scale > 0).then(|| view! { " · " <kbd>"1"</kbd>"–"<kbd>{rules.strength_scale}</kbd>" strength" })}
            {(rules.rationale != RationalePolicy::Off).then(|| view! { " · " <kbd>"R"</kbd>" rationale, " <kbd>"Esc"</kbd>" back" })}
        </p>
        {move || state.message.get().map(|m| view! { <p class="error" id="label-message">{m}</p> })}
        {move || state.finished.get().then(|| view! {
            <p class="notice" id="all-done">"Nothing left to label here for now. Thank you!"</p>
        })}
        {move || state.current.get().map(|item| {
            let strengths = strengths.clone();
            view! {
                <article class="item" data-assignment=item.assignment_id.to_string()>
                    <section class="prompt">
                        {item.prompt.into_iter().map(|m| view! {
                            <div class=format!("message {}", m.role)>
                                <span class="role">{m.role.clone()}</span>
                                <div class="markdown" inner_html=m.html></div>
                            </div>
                        }).collect_view()}
                    </section>
                    <section class="responses">
                        {item.responses.into_iter().zip(["A", "B"]).map(|(r, side)| view! {
                            <div class="response" data-side=side>
                                <h3>"Response " {side}</h3>
                                <div class="markdown" inner_html=r.html></div>
                            </div>
                        }).collect_view()}
                    </section>
                    {(!strengths.is_empty()).then(|| view! {
                        <div class="row strength">
                            "How much better? "
                            {strengths.into_iter().map(|n| view! {
                                <button class:selected=move || state.strength.get() == Some(n)
                                        on:click=move |_| state.strength.set(Some(n))>{n}</button>
                            }).collect_view()}
                        </div>
                    })}
                    {(rules.rationale != RationalePolicy::Off).then(|| view! {
                        <textarea class="rationale" node_ref=state.rationale_box rows="2"
                            placeholder=if rules.rationale == RationalePolicy::Required { "Rationale (required)" } else { "Rationale (optional)" }
                            prop:value=move || state.rationale.get()
                            on:input=move |ev| state.rationale.set(event_target_value(&ev))></textarea>
                    })}
                    <div class="row choices">
                        <button id="choose-a" class="primary" disabled=move || state.busy.get() on:click=move |_| state.answer(Choice::A)>"A is better"</button>
                        {rules.allow_tie.then(|| view! {
                            <button id="choose-tie" disabled=move || state.busy.get() on:click=move |_| state.answer(Choice::Tie)>"Tie"</button>
                        })}
                        {rules.allow_both_bad.then(|| view! {
                            <button id="choose-both-bad" disabled=move || state.busy.get() on:click=move |_| state.answer(Choice::BothBad)>"Both bad"</button>
                        })}
                        <button id="choose-b" class="primary" disabled=move || state.busy.get() on:click=move |_| state.answer(Choice::B)>"B is better"</button>
                        <button id="choose-skip" disabled=move || state.busy.get() on:click=move |_| state.answer(Choice::Skip)>"Skip"</button>
                    </div>
                </article>
            }
        })}
    }
}
