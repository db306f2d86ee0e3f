//! The labeling page: prompt and two responses side by side, answered from the keyboard.
//! The next item is fetched while the current one is on screen, so it appears at once.

use domain::{CampaignStatus, Choice, JudgmentRules, RationalePolicy};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use uuid::Uuid;

use crate::api::*;
use crate::errors::error_notice;
use crate::pages::PromptView;
use domain::words::count;

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

/// An answer the labeler gave, kept on the page so that it can be changed while the
/// campaign's undo window lasts.
#[derive(Clone)]
struct Answered {
    judgment_id: Uuid,
    item: LabelItem,
    choice: Choice,
    strength: Option<i32>,
    rationale: String,
    /// When the campaign's undo window closes (the page's clock, in ms).
    until_ms: f64,
}

/// How an answer reads back to the labeler.
fn choice_words(choice: Choice) -> &'static str {
    match choice {
        Choice::A => "A is better",
        Choice::B => "B is better",
        Choice::Tie => "Tie",
        Choice::BothBad => "Both bad",
        Choice::Skip => "Skipped",
    }
}

/// The page's state; every field is a signal, so the whole struct is `Copy`.
#[derive(Clone, Copy)]
struct Labeler {
    campaign: Uuid,
    rules: StoredValue<Option<JudgmentRules>>,
    /// How long an answer may be changed after it is given; 0: never.
    undo_seconds: StoredValue<i32>,
    current: RwSignal<Option<LabelItem>>,
    queued: RwSignal<Option<LabelItem>>,
    finished: RwSignal<bool>,
    /// Why labeling stopped (the campaign was paused or closed): the page says so and offers
    /// the way back instead of an item.
    stopped: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    done: RwSignal<i64>,
    skipped: RwSignal<i64>,
    strength: RwSignal<Option<i32>>,
    rationale: RwSignal<String>,
    message: RwSignal<Option<String>>,
    /// Good news that needs no action (an answer changed).
    notice: RwSignal<Option<String>>,
    /// The last answer, while it may still be changed.
    last: RwSignal<Option<Answered>>,
    /// The answer being changed: its item is on screen instead of the current one.
    revising: RwSignal<Option<Answered>>,
    /// What was chosen and written for the current item before a change began, given back
    /// after it.
    held: StoredValue<(Option<i32>, String)>,
    /// A failure that is not about the campaign (signed out, the server unreachable).
    problem: RwSignal<Option<AppError>>,
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
            self.skipped
                .update(|skipped| *skipped = (*skipped).max(item.progress.skipped));
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
                Err(e) => self.halt(e, false).await,
            }
        });
    }

    /// After a refusal: if the campaign no longer hands out items, the item leaves the screen
    /// and the page says why; otherwise the reason is shown over the next item. `saved`: the
    /// last answer was stored before the refusal.
    async fn halt(self, error: AppError, saved: bool) {
        if !matches!(error, AppError::Conflict(_)) {
            // The server could not be asked, or refused for another reason: said with its way
            // forward (sign in, try again). A stored answer's item still leaves the screen.
            // Gone or no longer theirs: the item cannot be answered any more either.
            let unanswerable = matches!(error, AppError::NotFound | AppError::Forbidden(_));
            if saved || unanswerable {
                self.current.set(None);
                self.queued.set(None);
            }
            self.problem.set(Some(error));
            return;
        }
        let status = get_label_context(self.campaign).await.map(|c| c.status);
        let answer = if saved {
            " Your last answer was saved."
        } else {
            ""
        };
        let stop = match status {
            Ok(CampaignStatus::Paused) => Some(format!(
                "This campaign is paused.{answer} Come back when an admin resumes it."
            )),
            Ok(CampaignStatus::Closed) if saved => Some(format!(
                "This campaign is closed.{answer} Thank you for your work!"
            )),
            Ok(CampaignStatus::Closed) => Some(
                "This campaign was closed before your last answer could be saved. Thank you for your work!"
                    .into(),
            ),
            Ok(CampaignStatus::Draft) => Some("This campaign has not started yet.".into()),
            Ok(CampaignStatus::Active) => None,
            Err(e) => Some(e.sentence()),
        };
        match stop {
            Some(why) => {
                self.current.set(None);
                self.queued.set(None);
                self.finished.set(false);
                self.message.set(None);
                self.stopped.set(Some(why));
            }
            None => {
                // Still open (a lease ran out, say): say why and go on with the next item.
                self.message
                    .set(Some(format!("{} Here is the next item.", error.sentence())));
                self.current.set(None);
                self.queued.set(None);
                self.load_first();
            }
        }
    }

    fn answer(self, choice: Choice) {
        if self.busy.get_untracked() {
            return;
        }
        let revising = self.revising.get_untracked();
        let Some(item) = revising
            .as_ref()
            .map(|r| r.item.clone())
            .or_else(|| self.current.get_untracked())
        else {
            return;
        };
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
        let written = rationale.clone();
        let rationale = Some(rationale).filter(|r| !r.trim().is_empty());
        let time_on_task = Some((now_ms() - self.shown_at.get_value()).max(0.0) as i32);
        self.busy.set(true);
        self.message.set(None);
        self.notice.set(None);
        self.problem.set(None);
        if let Some(previous) = revising {
            self.change(previous, choice, strength, rationale, time_on_task);
            return;
        }
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
                    self.skipped.set(answer.ack.progress.skipped);
                    self.remember(Answered {
                        judgment_id: answer.ack.judgment_id,
                        item,
                        choice: answer.ack.choice,
                        strength,
                        rationale: written,
                        until_ms: now_ms() + f64::from(self.undo_seconds.get_value()) * 1000.0,
                    });
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
                            // The answer is stored: its item never stays on screen.
                            Err(e) => self.halt(e, true).await,
                        },
                    }
                }
                // Not stored; a failure on the way is retried with the same request id.
                Err(e) => self.halt(e, false).await,
            }
            self.busy.set(false);
        });
    }

    /// Keeps `answered` changeable until the campaign's undo window closes.
    fn remember(self, answered: Answered) {
        let seconds = self.undo_seconds.get_value();
        if seconds <= 0 {
            return;
        }
        self.last.set(Some(answered));
        // The page may be gone by then: its signals are only tried. While the answer is being
        // changed the server decides, and the offer goes when the change ends.
        set_timeout(
            move || {
                if self.revising.try_get_untracked().flatten().is_none() {
                    self.forget_expired();
                }
            },
            std::time::Duration::from_secs(seconds as u64),
        );
    }

    /// Drops the offer to change the last answer once its window has closed.
    fn forget_expired(self) {
        let expired = self
            .last
            .try_get_untracked()
            .flatten()
            .is_some_and(|last| last.until_ms <= now_ms());
        if expired {
            let _ = self.last.try_set(None);
        }
    }

    /// Puts the last answer's item back on screen, its answer chosen again from there.
    fn start_revising(self) {
        if self.busy.get_untracked() || self.revising.get_untracked().is_some() {
            return;
        }
        self.forget_expired();
        let Some(last) = self.last.get_untracked() else {
            return;
        };
        self.message.set(None);
        self.notice.set(None);
        self.held.set_value((
            self.strength.get_untracked(),
            self.rationale.get_untracked(),
        ));
        self.strength.set(last.strength);
        self.rationale.set(last.rationale.clone());
        self.shown_at.set_value(now_ms());
        self.revising.set(Some(last));
    }

    /// Back to the current item as it was left, the last answer as it stands.
    fn stop_revising(self) {
        if self.revising.try_update(Option::take).flatten().is_some() {
            let (strength, rationale) = self.held.get_value();
            self.strength.set(strength);
            self.rationale.set(rationale);
            self.shown_at.set_value(now_ms());
        }
        self.forget_expired();
    }

    fn change(
        self,
        previous: Answered,
        choice: Choice,
        strength: Option<i32>,
        rationale: Option<String>,
        time_on_task: Option<i32>,
    ) {
        spawn_local(async move {
            let written = rationale.clone().unwrap_or_default();
            match revise_judgment(
                previous.judgment_id,
                choice,
                strength,
                rationale,
                time_on_task,
            )
            .await
            {
                Ok(ack) => {
                    self.done.set(ack.progress.done);
                    self.skipped.set(ack.progress.skipped);
                    self.notice.set(Some(format!(
                        "Your answer is now “{}” (it was “{}”).",
                        choice_words(ack.choice),
                        choice_words(previous.choice)
                    )));
                    self.last.set(Some(Answered {
                        choice: ack.choice,
                        strength,
                        rationale: written,
                        ..previous
                    }));
                }
                Err(e) => {
                    // Refused (too late, no longer the last): the offer goes. A failure on the
                    // way (the server unreachable) may be tried again.
                    if matches!(
                        e,
                        AppError::Conflict(_) | AppError::NotFound | AppError::Forbidden(_)
                    ) {
                        self.last.set(None);
                    }
                    self.message.set(Some(format!(
                        "{} Your answer stays as it was.",
                        e.sentence()
                    )));
                }
            }
            self.stop_revising();
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
        match ev.key().as_str() {
            "u" | "U" => {
                ev.prevent_default();
                self.start_revising();
                return;
            }
            "Escape" => {
                self.stop_revising();
                return;
            }
            _ => {}
        }
        let rules = self.rules.get_value();
        let choice = match ev.key().as_str() {
            "a" | "A" | "ArrowLeft" => Some(Choice::A),
            "b" | "B" | "ArrowRight" => Some(Choice::B),
            "t" | "T" if rules.is_some_and(|r| r.allow_tie) => Some(Choice::Tie),
            "x" | "X" if rules.is_some_and(|r| r.allow_both_bad) => Some(Choice::BothBad),
            "s" | "S" => Some(Choice::Skip),
            "j" | "J" | "k" | "K" => {
                ev.prevent_default();
                let down = matches!(ev.key().as_str(), "j" | "J");
                scroll_responses(if down { 1.0 } else { -1.0 });
                None
            }
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

/// Scrolls the focused response by most of its height (`direction` 1 down, -1 up), or both
/// together when neither has the focus: long answers scroll inside their boxes.
fn scroll_responses(direction: f64) {
    use wasm_bindgen::JsCast;
    let Ok(boxes) = document().query_selector_all(".response .body") else {
        return;
    };
    let boxes: Vec<web_sys::HtmlElement> = (0..boxes.length())
        .filter_map(|i| boxes.item(i))
        .filter_map(|node| node.dyn_into().ok())
        .collect();
    let focused = document().active_element();
    let targets: Vec<&web_sys::HtmlElement> = match boxes
        .iter()
        .find(|b| focused.as_ref().is_some_and(|f| b.contains(Some(f))))
    {
        Some(one) => vec![one],
        None => boxes.iter().collect(),
    };
    for target in targets {
        let step = f64::from(target.client_height()) * 0.8 * direction;
        target.scroll_by_with_x_and_y(0.0, step);
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
        return view! { <crate::pages::NotFoundPage/> }.into_any();
    };
    let context = Resource::new(move || campaign, get_label_context);
    let state = Labeler {
        campaign,
        rules: StoredValue::new(None),
        undo_seconds: StoredValue::new(0),
        current: RwSignal::new(None),
        queued: RwSignal::new(None),
        finished: RwSignal::new(false),
        stopped: RwSignal::new(None),
        busy: RwSignal::new(false),
        done: RwSignal::new(0),
        skipped: RwSignal::new(0),
        strength: RwSignal::new(None),
        rationale: RwSignal::new(String::new()),
        message: RwSignal::new(None),
        notice: RwSignal::new(None),
        last: RwSignal::new(None),
        revising: RwSignal::new(None),
        held: StoredValue::new((None, String::new())),
        problem: RwSignal::new(None),
        shown_at: StoredValue::new(0.0),
        rationale_box: NodeRef::new(),
    };
    // Effects run only in the browser, after hydration: the page is inert until then.
    Effect::new(move |_| {
        if let Some(Ok(ctx)) = context.get() {
            state.rules.set_value(Some(ctx.rules));
            state.undo_seconds.set_value(ctx.undo_seconds);
            state.done.set(ctx.progress.done);
            state.skipped.set(ctx.progress.skipped);
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
                Err(e) => error_notice(&e),
                Ok(ctx) => label_body(state, ctx).into_any(),
            })}
        </Suspense>
    }
    .into_any()
}

fn label_body(state: Labeler, ctx: LabelContext) -> impl IntoView {
    let rules = ctx.rules;
    let strengths: Vec<i32> = (1..=rules.strength_scale).collect();
    // "12 of 40 left for you": the items answered since the page opened come off what was
    // left then (other labelers may take some meanwhile, so it is an estimate).
    let answered_at_open = ctx.progress.done + ctx.progress.skipped;
    let yours = answered_at_open + ctx.outlook.left_for_you;
    let left = move || {
        let answered = state.done.get() + state.skipped.get() - answered_at_open;
        (ctx.outlook.left_for_you - answered).max(0)
    };
    let campaign = state.campaign;
    view! {
        <div class="row spread">
            <h1>{ctx.name.clone()}</h1>
            <p class="progress-line">"Judged: " <strong id="my-progress">{move || state.done.get()}</strong>
               " · " <span id="left-for-you">{move || format!("{} of {yours} left for you", left())}</span>
               " · " <span id="campaign-complete">{format!("campaign: {} of {} complete", ctx.outlook.items_complete, count(ctx.outlook.items, "item"))}</span>
               " · " <a href=format!("/campaigns/{campaign}")>"campaign page"</a></p>
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
            " · " <kbd>"J"</kbd>"/"<kbd>"K"</kbd>" scroll"
            {(ctx.undo_seconds > 0).then(|| view! { " · " <kbd>"U"</kbd>" change your last answer" })}
        </p>
        {move || state.message.get().map(|m| view! { <p class="error" id="label-message" role="alert">{m}</p> })}
        {move || state.notice.get().map(|m| view! { <p class="notice-line" id="label-notice" role="status">{m}</p> })}
        {move || match (state.last.get(), state.revising.get()) {
            (_, Some(r)) => Some(view! {
                <div class="notice" id="revising" role="status">
                    <p>{format!("You are changing your answer “{}” to this item. Choose again, or keep it as it was.", choice_words(r.choice))}</p>
                    <button type="button" id="keep-answer" on:click=move |_| state.stop_revising()>"Keep it (Esc)"</button>
                </div>
            }.into_any()),
            (Some(last), None) => Some(view! {
                <p class="undo-bar" id="undo-bar">
                    {format!("Saved: “{}”. ", choice_words(last.choice))}
                    <button type="button" class="link" id="undo" on:click=move |_| state.start_revising()>"Change it (U)"</button>
                </p>
            }.into_any()),
            (None, None) => None,
        }}
        {move || state.problem.get().map(|e| view! {
            <div id="label-problem">
                {error_notice(&e)}
                // With the item still on screen, answering again retries (the same request id);
                // without one, this asks for the next item.
                {state.current.get().is_none().then(|| view! {
                    <button type="button" id="try-again" on:click=move |_| {
                        state.problem.set(None);
                        state.load_first();
                    }>"Try again"</button>
                })}
            </div>
        })}
        {move || state.stopped.get().map(|why| view! {
            <div class="notice" id="label-stopped" role="status">
                <p>{why}</p>
                <p class="way-forward"><a href="/">"Back to the campaign list"</a> " · " <a href=format!("/campaigns/{campaign}")>"Campaign page"</a></p>
            </div>
        })}
        {move || (state.finished.get() && state.revising.get().is_none()).then(|| view! {
            <div class="notice" id="all-done" role="status">
                <p>{move || match (state.done.get(), state.skipped.get()) {
                    (0, 0) => "There is nothing for you to label here for now.".to_string(),
                    (done, 0) => format!("All done: you have judged {} in this campaign.", count(done, "item")),
                    (done, skipped) => format!("All done: you have judged {} in this campaign and skipped {}.", count(done, "item"), count(skipped, "item")),
                }}</p>
                <p>"New items appear here when an admin adds them. Thank you!"</p>
                <p class="way-forward"><a href="/">"Back to the campaign list"</a> " · " <a href=format!("/campaigns/{campaign}")>"Campaign page"</a></p>
            </div>
        })}
        {move || state.revising.get().map(|r| r.item).or_else(|| state.current.get()).map(|item| {
            let strengths = strengths.clone();
            view! {
                <article class="item" class:revising=move || state.revising.with(Option::is_some)
                         data-assignment=item.assignment_id.to_string()>
                    <PromptView messages=item.prompt/>
                    <section class="responses">
                        {item.responses.into_iter().zip(["A", "B"]).map(|(r, side)| view! {
                            <div class="response" data-side=side>
                                <h3>"Response " {side}</h3>
                                // Long answers scroll inside their box (J/K from the keyboard),
                                // so the choices stay in view.
                                <div class="body markdown" tabindex="0" role="region"
                                     aria-label=format!("Response {side}") inner_html=r.html></div>
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
                        <textarea class="rationale" node_ref=state.rationale_box rows="2" aria-label="Rationale"
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
