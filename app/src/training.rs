//! Training on an export, on the exports page: start a reward-model or DPO run, watch its
//! progress and its loss/accuracy chart live, cancel it, and find the registered model.

use domain::{ExportFormat, ExportStatus, JobStatus, TrainPoint, TrainingRecord};
use leptos::prelude::*;

use crate::api::*;
use crate::errors::error_notice;
use crate::pages::{outcome, poll_while};

/// `exports`: the page's list of exports (it polls them while one runs).
#[component]
pub fn TrainingSection(
    exports: Resource<Result<Vec<domain::ExportRecord>, AppError>>,
) -> impl IntoView {
    let start = ServerAction::<StartTraining>::new();
    let me = Resource::new(|| (), |_| whoami());
    let may_train = move || {
        me.get()
            .and_then(|r| r.ok())
            .flatten()
            .is_some_and(|u| u.role != domain::Role::Labeler)
    };
    let cancel = ServerAction::<CancelTraining>::new();
    let tick = RwSignal::new(0u32);
    let runs = Resource::new(
        move || (start.version().get(), cancel.version().get(), tick.get()),
        |_| list_training(),
    );
    // Poll while a run is queued or running.
    poll_while(
        move || {
            runs.get_untracked()
                .is_some_and(|r| r.is_ok_and(|list| list.iter().any(|run| run.status.is_open())))
        },
        tick,
        std::time::Duration::from_millis(1000),
    );
    view! {
        <section class="card" id="training">
            <h2>"Train on an export"</h2>
            <p class="hint">
                "A reward model (Bradley–Terry, scalar head) or a DPO fine-tune of a registered model, "
                "on a finished trl, trl-conversational or hh-rlhf export. A finished DPO model is "
                "registered, ready to be compared with its base in a new campaign. Empty fields take the defaults."
            </p>
            {outcome(start, "Training run queued.")}
            <ActionForm action=start>
                <div class="row">
                    <label>"Export"
                        <Suspense fallback=|| view! { <select name="export" id="train-export"></select> }>
                            {move || may_train().then(|| exports.get().and_then(|r| r.ok())).flatten().map(|list| view! {
                                <select name="export" id="train-export">
                                    {list.into_iter()
                                        .filter(|e| e.status == ExportStatus::Done && e.spec.format != ExportFormat::Raw)
                                        .map(|e| view! {
                                            <option value=e.id.to_string()>
                                                {format!("{} · {} · {}", domain::words::moment(&e.created_at),
                                                         e.spec.format.as_str(), domain::words::count(e.rows.unwrap_or(0), "row"))}
                                            </option>
                                        }).collect_view()}
                                </select>
                            })}
                        </Suspense>
                    </label>
                    <label>"What"
                        <select name="kind" id="train-kind">
                            <option value="dpo">"DPO fine-tune"</option>
                            <option value="reward">"reward model"</option>
                        </select>
                    </label>
                </div>
                <div class="row">
                    <label>"Epochs" <input type="number" name="epochs" min="1" max="100" placeholder="1"/></label>
                    <label>"Max steps" <input type="number" name="max_steps" id="train-max-steps" min="1" placeholder="all"/></label>
                    <label>"Learning rate" <input name="lr" placeholder="1e-6 DPO, 1e-5 reward"/></label>
                    <label>"Beta (DPO)" <input name="beta" placeholder="0.1"/></label>
                    <label>"Max length" <input type="number" name="max_length" id="train-max-length" min="8" placeholder="1024"/></label>
                </div>
                <button type="submit" class="primary" id="start-training">"Train"</button>
            </ActionForm>
            {outcome(cancel, "Training run cancelled.")}
            <Suspense fallback=|| ()>
                {move || may_train().then(|| runs.get()).flatten().map(|r| match r {
                    Err(e) => error_notice(&e),
                    Ok(list) if list.is_empty() => view! { <p class="notice">"No training runs yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <div id="training-runs">
                            {list.into_iter().map(|run| run_card(run, cancel)).collect_view()}
                        </div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

fn run_card(run: TrainingRecord, cancel: ServerAction<CancelTraining>) -> impl IntoView {
    let id = run.id;
    let open = run.status.is_open();
    let last = run.points.last().cloned();
    let figure = |name: &str, value: Option<f64>| {
        value.map(|v| view! { <span class="figure">{format!("{name} {v:.3}")}</span> })
    };
    let eval = run.eval.last().cloned();
    view! {
        <article class="training-run" data-status=run.status.as_str() data-kind=run.kind.as_str()>
            <header>
                <strong>{match run.kind { domain::TrainKind::Dpo => "DPO", domain::TrainKind::Reward => "Reward model" }}</strong>
                " on " {run.base_model.clone()}
                " · " <span class=format!("badge {}", run.status)>{run.status.as_str()}</span>
                // The phase says how far an open run is; an ended one has its status.
                {open.then(|| view! {
                    " · " <span class="phase">{run.phase.clone()}</span>
                    <button class="link cancel-training" on:click=move |_| {
                        cancel.dispatch(CancelTraining { run: id });
                    }>"Cancel"</button>
                })}
            </header>
            <div class="meter"><div class="fill" style=format!("width: {:.1}%", run.percent())></div></div>
            <p class="steps">
                {format!("step {} / {}", run.step, run.total_steps.map_or("?".into(), |t| t.to_string()))}
                {run.train_pairs.map(|n| format!(" · {n} training pairs"))}
                {run.eval_pairs.map(|n| format!(", {n} held out"))}
            </p>
            {run.steps_note().map(|note| view! { <p class="hint steps-note">{note}</p> })}
            <p>
                {figure("loss", last.as_ref().and_then(TrainPoint::loss))}
                " " {figure("accuracy", last.as_ref().and_then(TrainPoint::accuracy))}
                " " {figure("eval accuracy", eval.as_ref().and_then(TrainPoint::accuracy))}
            </p>
            {(!run.points.is_empty()).then(|| chart(&run.points))}
            {run.model_name.clone().map(|name| view! {
                <p class="notice model-registered">"Registered as model " <code>{name}</code>
                   " — pick it with its base on a campaign's generation page."</p>
            })}
            {(run.status == JobStatus::Done).then(|| run.output_dir.clone().map(|dir| view! {
                <p class="hint">"Checkpoint: " <code>{dir}</code></p>
            })).flatten()}
            {run.error.clone().map(|e| view! {
                <p class="error run-error">{match run.status {
                    JobStatus::Cancelled => format!("Cancelled: {e}"),
                    _ => format!("The run failed: {e}"),
                }}</p>
            })}
        </article>
    }
}

/// Loss (left scale) and accuracy (0–1) per step, as two lines in one SVG.
fn chart(points: &[TrainPoint]) -> impl IntoView {
    const W: f64 = 480.0;
    const H: f64 = 140.0;
    const PAD: f64 = 6.0;
    let last_step = points.iter().map(|p| p.step).max().unwrap_or(1).max(1) as f64;
    let first_step = points.iter().map(|p| p.step).min().unwrap_or(0) as f64;
    let span = (last_step - first_step).max(1.0);
    let losses: Vec<f64> = points.iter().filter_map(TrainPoint::loss).collect();
    let top = losses.iter().copied().fold(f64::MIN, f64::max).max(1e-9);
    let bottom = losses.iter().copied().fold(f64::MAX, f64::min).min(0.0);
    // One step alone sits in the middle.
    let x = |step: u32| {
        if last_step <= first_step {
            W / 2.0
        } else {
            PAD + (f64::from(step) - first_step) / span * (W - 2.0 * PAD)
        }
    };
    let y = |v: f64, lo: f64, hi: f64| H - PAD - (v - lo) / (hi - lo).max(1e-9) * (H - 2.0 * PAD);
    let line = |f: &dyn Fn(&TrainPoint) -> Option<f64>, lo: f64, hi: f64| -> String {
        points
            .iter()
            .filter_map(|p| f(p).map(|v| format!("{:.1},{:.1}", x(p.step), y(v, lo, hi))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let loss_line = line(&TrainPoint::loss, bottom, top);
    let accuracy_line = line(&TrainPoint::accuracy, 0.0, 1.0);
    // Dots while there are too few points for a line to show (a one-step run is a result).
    let dots = |f: fn(&TrainPoint) -> Option<f64>, lo: f64, hi: f64, class: &'static str| {
        points
            .iter()
            .take_while(|_| points.len() < 3)
            .filter_map(|p| f(p).map(|v| (x(p.step), y(v, lo, hi))))
            .map(|(cx, cy)| view! { <circle class=class cx=format!("{cx:.1}") cy=format!("{cy:.1}") r="2.5"></circle> })
            .collect_view()
    };
    let loss_dots = dots(TrainPoint::loss, bottom, top, "loss");
    let accuracy_dots = dots(TrainPoint::accuracy, 0.0, 1.0, "accuracy");
    view! {
        <figure class="chart">
            <svg class="training-chart" viewBox=format!("0 0 {W} {H}") role="img"
                 aria-label="loss and accuracy per step">
                <rect x="0" y="0" width=W height=H class="frame"></rect>
                <polyline class="loss" points=loss_line></polyline>
                <polyline class="accuracy" points=accuracy_line></polyline>
                {loss_dots}
                {accuracy_dots}
            </svg>
            <figcaption>
                <span class="key loss">"loss"</span> {format!(" ({bottom:.2}–{top:.2})  ")}
                <span class="key accuracy">"accuracy"</span> " (0–1), per step"
            </figcaption>
        </figure>
    }
}
