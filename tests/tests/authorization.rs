//! Who may call what outside the JSON API (whose matrix is `api.rs`'s): every server function
//! of the UI and every auth form, over real HTTP against a spawned server, as each kind of
//! caller. Both lists are read from where the server registers them, so a server function or
//! a form route that the matrices here do not name fails them.

use std::sync::Arc;

use app::api as ui;
use domain::Role;
use leptos::server_fn::ServerFn;
use reqwest::cookie::CookieStore;
use reqwest::Method;
use serde_json::{json, Value};
use store::PgPool;
use tests::{campaign_with_items, pair, spawn, user, Api, TestServer, PASSWORD};

/// Someone calling the server as the UI does: with the session cookie the login form gave a
/// browser, with an API token, or with nothing; redirects are left unfollowed.
struct Caller {
    who: &'static str,
    base: String,
    http: reqwest::Client,
    cookies: Arc<reqwest::cookie::Jar>,
    token: Option<String>,
}

impl Caller {
    fn signed_out(server: &TestServer, who: &'static str) -> Self {
        let cookies = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(cookies.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            who,
            base: server.base.clone(),
            http,
            cookies,
            token: None,
        }
    }

    /// Signed in through the login form, as a browser is.
    async fn signed_in(server: &TestServer, who: &'static str, email: &str) -> Self {
        let caller = Self::signed_out(server, who);
        let login = [("email", email), ("password", PASSWORD), ("next", "/")];
        let answer = caller.post_form("/auth/login", &login, None).await;
        assert_eq!(answer, (303, Some("/".into())), "{who} signs in");
        assert!(caller.session().is_some(), "{who} holds a session cookie");
        caller
    }

    /// Sends an API token instead of a cookie.
    fn with_token(server: &TestServer, who: &'static str, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..Self::signed_out(server, who)
        }
    }

    /// The session cookie this caller holds, as its `Cookie` header.
    fn session(&self) -> Option<String> {
        let url = self.base.parse().expect("url");
        let header = self.cookies.cookies(&url)?;
        let header = header.to_str().ok()?.to_string();
        header
            .contains(server::http::auth::SESSION_COOKIE)
            .then_some(header)
    }

    /// Calls the server function at `path` with `args`: its query for GET functions, its
    /// URL-encoded form otherwise. Returns the status and the answer.
    async fn call(&self, method: &Method, path: &str, args: &[(&str, String)]) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut request = if *method == Method::GET {
            self.http.get(url).query(args)
        } else {
            self.http.request(method.clone(), url).form(args)
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// [`Caller::call`], for an answer that is JSON.
    async fn answer(&self, method: Method, path: &str, args: &[(&str, &str)]) -> Value {
        let args: Vec<_> = args.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let (status, text) = self.call(&method, path, &args).await;
        assert_eq!(status, 200, "{} {path}: {text}", self.who);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    /// Posts a form, from the site `origin` when given; returns the status and where it
    /// redirects.
    async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, Option<String>) {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.expect("request");
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        (response.status().as_u16(), location)
    }
}

/// Another site, for cross-site request forgery.
const EVIL: &str = "http://evil.example";

/// What a server function answers a caller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// 200: it ran.
    Ran,
    /// Its error (500), whose message holds this text.
    Refused(&'static str),
}

const RAN: Want = Want::Ran;
/// No caller: the function did not run.
const SIGN_IN: Want = Want::Refused("\"SignedOut\"");
/// Not the caller's to know of: exactly as for an id that does not exist.
const HIDDEN: Want = Want::Refused("\"NotFound\"");
/// Visible to the caller, who may not do this.
const FORBIDDEN: Want = Want::Refused("{\"Forbidden\":");

impl Want {
    fn holds(self, status: u16, answer: &str) -> bool {
        match self {
            Want::Ran => status == 200,
            Want::Refused(text) => status == 500 && answer.contains(text),
        }
    }
}

/// One call of the matrix: who calls which server function (by its path) with what.
struct Case<'a> {
    caller: &'a Caller,
    function: &'static str,
    args: Vec<(&'static str, String)>,
    want: Want,
}

fn case<'a, 'b>(
    caller: &'a Caller,
    function: &'static str,
    args: impl IntoIterator<Item = (&'static str, &'b str)>,
    want: Want,
) -> Case<'a> {
    Case {
        caller,
        function,
        args: args.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        want,
    }
}

/// No arguments.
const NONE: [(&str, &str); 0] = [];

/// Where a server function is served.
fn path<F: ServerFn>() -> &'static str {
    F::PATH
}

/// Every server function the server serves, as (method, path): the registry leptos_axum
/// mounts them from.
fn registered() -> Vec<(Method, &'static str)> {
    let mut all: Vec<_> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, method)| (method, path))
        .collect();
    all.sort_by_key(|(_, path)| *path);
    all
}

struct World {
    /// Kept for as long as the test runs.
    _server: TestServer,
    signed_out: Caller,
    /// Labels X.
    labeler: Caller,
    /// Labels Y only.
    outsider: Caller,
    /// Analyses X.
    researcher: Caller,
    /// A member of nothing.
    admin: Caller,
    /// The labeler, by API token rather than cookie.
    labeler_token: Caller,
    /// An API token that is no one's.
    bad_token: Caller,
    x: String,
    y: String,
    /// A draft campaign without members.
    z: String,
    /// An assignment of the labeler in X, and one of the outsider in Y.
    x_assignment: String,
    y_assignment: String,
    /// The labeler's last judgment in X (of another item than `x_assignment`).
    x_judgment: String,
    admin_id: String,
    /// A labeler of nothing, for the admin to disable.
    idle_id: String,
    /// A generation job of X.
    job: String,
    /// The researcher's finished export of X, with a queued training run on it.
    x_export: String,
    x_run: String,
    /// The admin's finished export of Y, with a queued training run on it.
    y_export: String,
    y_run: String,
    /// An open invitation.
    invitation: String,
}

async fn world(pool: PgPool) -> World {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let labeler_token = user(&pool, "lab@x", Role::Labeler).await;
    let labeler = Api::new(&server, &labeler_token);
    let outsider = Api::new(&server, &user(&pool, "out@x", Role::Labeler).await);
    user(&pool, "spare@x", Role::Labeler).await;
    user(&pool, "idle@x", Role::Labeler).await;
    let items: Vec<_> = (0..4).map(pair).collect();
    let x = campaign_with_items(&admin, json!({"name": "X", "overlap": 2}), &items).await;
    let y = campaign_with_items(&admin, json!({"name": "Y"}), &items).await;
    let (status, z) = admin.post("/api/v1/campaigns", json!({"name": "Z"})).await;
    assert_eq!(status, 201, "{z}");
    let z = z["id"].as_str().expect("id").to_string();
    admin.add_member(&x, "res@x", "researcher").await;
    admin.add_member(&x, "lab@x", "labeler").await;
    admin.add_member(&y, "out@x", "labeler").await;
    let (_, item) = labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
    let x_assignment = item["assignment_id"].as_str().expect("item").to_string();
    let (_, item) = outsider.get(&format!("/api/v1/campaigns/{y}/next")).await;
    let y_assignment = item["assignment_id"].as_str().expect("item").to_string();

    // A model, a prompt and a generation job in X.
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)");
    let (status, body) = admin
        .post("/api/v1/models", json!({"name": "m", "path": model_path}))
        .await;
    assert_eq!(status, 201, "{body}");
    let prompts = format!("/api/v1/campaigns/{x}/prompts");
    assert_eq!(admin.post(&prompts, json!("Say hi.")).await.0, 201);
    let generate = json!({"model": "m", "max_new_tokens": 1});
    let (status, job) = admin
        .post(&format!("/api/v1/campaigns/{x}/generate"), generate)
        .await;
    assert_eq!(status, 202, "{job}");
    let job = job["job_id"].as_str().expect("job").to_string();

    // Finished exports with a training run each: the researcher's of X, the admin's of Y.
    let export_and_train = |api: Api, campaign: String| async move {
        let spec = json!({"campaigns": [campaign], "format": "trl"});
        let (status, export) = api.post("/api/v1/exports", spec).await;
        assert_eq!(status, 202, "{export}");
        let export = export["id"].as_str().expect("export").to_string();
        assert_eq!(api.wait_export(&export).await["status"], "done");
        let (status, run) = api
            .post(
                &format!("/api/v1/exports/{export}/train"),
                json!({"kind": "reward"}),
            )
            .await;
        assert_eq!(status, 202, "{run}");
        (export, run["id"].as_str().expect("run").to_string())
    };
    let (x_export, x_run) = export_and_train(researcher.clone(), x.clone()).await;
    let (y_export, y_run) = export_and_train(admin.clone(), y.clone()).await;

    let admin_id = admin.user_id("admin@x").await;
    let idle_id = admin.user_id("idle@x").await;
    let (_, invitation) = store::accounts::invite_user(
        &pool,
        admin_id.parse().expect("uuid"),
        "new@x",
        Role::Labeler,
    )
    .await
    .expect("invite");
    // The labeler's last judgment in X, to change (their judgment of `x_assignment` in the
    // matrix comes after the changes).
    let (_, other) = labeler
        .get(&format!(
            "/api/v1/campaigns/{x}/next?exclude={x_assignment}"
        ))
        .await;
    let other = other["assignment_id"].as_str().expect("a second item");
    let (status, judged) = labeler
        .post(
            &format!("/api/v1/assignments/{other}/judgment"),
            json!({"choice": "a", "client_request_id": "world"}),
        )
        .await;
    assert_eq!(status, 201, "{judged}");
    let x_judgment = judged["judgment_id"]
        .as_str()
        .expect("judgment")
        .to_string();
    World {
        signed_out: Caller::signed_out(&server, "signed out"),
        labeler: Caller::signed_in(&server, "labeler", "lab@x").await,
        outsider: Caller::signed_in(&server, "outsider", "out@x").await,
        researcher: Caller::signed_in(&server, "researcher", "res@x").await,
        admin: Caller::signed_in(&server, "admin", "admin@x").await,
        labeler_token: Caller::with_token(&server, "labeler (token)", &labeler_token),
        bad_token: Caller::with_token(&server, "bad token", "pwt_invalid"),
        _server: server,
        x,
        y,
        z,
        x_assignment,
        y_assignment,
        x_judgment,
        admin_id,
        idle_id,
        job,
        x_export,
        x_run,
        y_export,
        y_run,
        invitation,
    }
}

/// Each server function × each kind of caller × their own campaign (or export) and another.
/// Refused calls come before the allowed one of each function, so a hole shows up as a
/// function that ran.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn server_function_matrix(pool: PgPool) {
    let w = world(pool.clone()).await;
    let x_item: String =
        sqlx::query_scalar("SELECT id::text FROM items WHERE campaign_id = $1::uuid LIMIT 1")
            .bind(&w.x)
            .fetch_one(&pool)
            .await
            .expect("an item of X");
    let (anon, lab, out, res, adm) = (
        &w.signed_out,
        &w.labeler,
        &w.outsider,
        &w.researcher,
        &w.admin,
    );
    let (x, y, z) = (w.x.as_str(), w.y.as_str(), w.z.as_str());
    let (xa, ya) = (w.x_assignment.as_str(), w.y_assignment.as_str());
    let (x_export, y_export) = (w.x_export.as_str(), w.y_export.as_str());
    let (x_run, y_run) = (w.x_run.as_str(), w.y_run.as_str());
    let (admin_id, idle_id, job) = (w.admin_id.as_str(), w.idle_id.as_str(), w.job.as_str());
    let invitation = w.invitation.as_str();

    let whoami = path::<ui::Whoami>();
    let list_campaigns = path::<ui::ListCampaigns>();
    let create_campaign = path::<ui::CreateCampaign>();
    let campaign_view = path::<ui::GetCampaignView>();
    let set_status = path::<ui::SetCampaignStatus>();
    let add_member = path::<ui::AddMember>();
    let import_text = path::<ui::ImportText>();
    let label_context = path::<ui::GetLabelContext>();
    let next_item = path::<ui::NextItem>();
    let judgment = path::<ui::SubmitJudgment>();
    let revise = path::<ui::ReviseJudgment>();
    let list_users = path::<ui::ListUsers>();
    let list_models = path::<ui::ListModels>();
    let register_model = path::<ui::RegisterModel>();
    let invite_user = path::<ui::InviteUser>();
    let set_disabled = path::<ui::SetUserDisabled>();
    let invite_email = path::<ui::InviteEmail>();
    let start_export = path::<ui::StartExport>();
    let cancel_export = path::<ui::CancelExport>();
    let list_exports = path::<ui::ListExports>();
    let generation_view = path::<ui::GetGenerationView>();
    let add_prompts = path::<ui::AddPromptsText>();
    let start_generation = path::<ui::StartGeneration>();
    let regenerate = path::<ui::RegenerateIdentical>();
    let cancel_generation = path::<ui::CancelGeneration>();
    let start_training = path::<ui::StartTraining>();
    let list_training = path::<ui::ListTraining>();
    let cancel_training = path::<ui::CancelTraining>();
    let list_items = path::<ui::ListItems>();
    let update_campaign = path::<ui::UpdateCampaign>();
    let set_archived = path::<ui::SetCampaignArchived>();
    let remove_member = path::<ui::RemoveMember>();
    let delete_campaign = path::<ui::DeleteCampaign>();
    let get_item = path::<ui::GetItem>();

    let new_campaign = [
        ("name", "N"),
        ("guidelines", ""),
        ("overlap", "1"),
        ("strength_scale", "0"),
        ("rationale", "optional"),
        ("undo_minutes", "5"),
    ];
    let item = pair(9).to_string();
    let import = |id| [("id", id), ("text", item.as_str()), ("format", "jsonl")];
    let export = |campaign| {
        [
            ("campaigns[0]", campaign),
            ("format", "trl"),
            ("file_type", "jsonl"),
            ("aggregation", "majority"),
            ("ties", "drop"),
            ("both_bad", "drop"),
            ("min_judgments", "1"),
            ("min_agreement", "0"),
            ("since", ""),
            ("until", ""),
            ("test_fraction", "0"),
            ("split_seed", "0"),
            ("columns", ""),
            ("license", "other"),
        ]
    };
    let generate = |id| {
        [
            ("id", id),
            ("model", "m"),
            ("k", "2"),
            ("temperature", "0.7"),
            ("top_p", "0.9"),
            ("max_new_tokens", "1"),
        ]
    };
    let train = |export| {
        [
            ("export", export),
            ("kind", "reward"),
            ("epochs", ""),
            ("max_steps", ""),
            ("lr", ""),
            ("beta", ""),
            ("max_length", ""),
        ]
    };
    let open_z = [("id", z), ("status", "active")];
    let close_x = [("id", x), ("status", "closed")];
    let member = |email, role| [("id", x), ("email", email), ("role", role)];
    let invite = |email, role| [("email", email), ("role", role)];
    let disable = |id| [("id", id), ("disabled", "true")];
    let pick = |assignment| [("assignment_id", assignment), ("choice", "a")];
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)");
    let new_model = |name| {
        [
            ("name", name),
            ("path", model_path.as_str()),
            ("notes", ""),
            ("parent", "m"),
        ]
    };
    let change = [("judgment_id", w.x_judgment.as_str()), ("choice", "b")];
    let browse = |id| {
        [
            ("id", id),
            ("q", ""),
            ("status", ""),
            ("agreement", ""),
            ("gold", ""),
            ("cursor", ""),
        ]
    };
    let x_item = x_item.as_str();
    // A member of Y only for the admin's allowed removal below.
    let spare_id: String = sqlx::query_scalar(
        "INSERT INTO campaign_members (campaign_id, user_id, role)
         SELECT $1::uuid, id, 'labeler' FROM users WHERE email = 'spare@x'
         RETURNING user_id::text",
    )
    .bind(&w.y)
    .fetch_one(&pool)
    .await
    .expect("spare@x in Y");
    let settings = |id| {
        [
            ("id", id),
            ("name", "Renamed"),
            ("guidelines", ""),
            ("overlap", "1"),
            ("strength_scale", "0"),
            ("rationale", "optional"),
            ("undo_minutes", "5"),
        ]
    };
    let unarchive = |id| [("id", id), ("archived", "false")];
    let leave = |id, user| [("id", id), ("user_id", user)];
    let unknown = Want::Refused("this invitation is unknown, used or expired");
    // Allowed, and refused only because the export has finished.
    let finished = Want::Refused("the export is already done");

    let cases = vec![
        // Anyone may ask who they are; signed out, they are no one.
        case(anon, whoami, NONE, RAN),
        case(&w.bad_token, whoami, NONE, RAN),
        case(lab, whoami, NONE, RAN),
        case(&w.labeler_token, whoami, NONE, RAN),
        case(adm, whoami, NONE, RAN),
        case(anon, list_campaigns, NONE, SIGN_IN),
        case(&w.bad_token, list_campaigns, NONE, SIGN_IN),
        case(lab, list_campaigns, NONE, RAN),
        case(out, list_campaigns, NONE, RAN),
        case(res, list_campaigns, NONE, RAN),
        case(adm, list_campaigns, NONE, RAN),
        case(anon, create_campaign, new_campaign, SIGN_IN),
        case(lab, create_campaign, new_campaign, FORBIDDEN),
        case(res, create_campaign, new_campaign, FORBIDDEN),
        case(adm, create_campaign, new_campaign, RAN),
        case(anon, campaign_view, [("id", x)], SIGN_IN),
        case(lab, campaign_view, [("id", x)], RAN),
        case(lab, campaign_view, [("id", y)], HIDDEN),
        case(out, campaign_view, [("id", x)], HIDDEN),
        case(res, campaign_view, [("id", x)], RAN),
        case(res, campaign_view, [("id", y)], HIDDEN),
        case(adm, campaign_view, [("id", x)], RAN),
        case(anon, set_status, open_z, SIGN_IN),
        case(lab, set_status, close_x, FORBIDDEN),
        case(&w.labeler_token, set_status, close_x, FORBIDDEN),
        case(out, set_status, close_x, HIDDEN),
        case(res, set_status, close_x, FORBIDDEN),
        case(adm, set_status, open_z, RAN),
        case(anon, add_member, member("spare@x", "researcher"), SIGN_IN),
        case(lab, add_member, member("spare@x", "researcher"), FORBIDDEN),
        case(out, add_member, member("out@x", "labeler"), HIDDEN),
        case(res, add_member, member("spare@x", "researcher"), FORBIDDEN),
        case(adm, add_member, member("spare@x", "labeler"), RAN),
        case(anon, import_text, import(x), SIGN_IN),
        case(lab, import_text, import(x), FORBIDDEN),
        case(out, import_text, import(x), HIDDEN),
        case(res, import_text, import(x), FORBIDDEN),
        case(adm, import_text, import(x), RAN),
        // Only the campaign's labelers label it: not its researchers, not admins.
        case(anon, label_context, [("id", x)], SIGN_IN),
        case(lab, label_context, [("id", y)], HIDDEN),
        case(out, label_context, [("id", x)], HIDDEN),
        case(res, label_context, [("id", x)], FORBIDDEN),
        case(adm, label_context, [("id", x)], FORBIDDEN),
        case(lab, label_context, [("id", x)], RAN),
        case(&w.labeler_token, label_context, [("id", x)], RAN),
        case(anon, next_item, [("id", x)], SIGN_IN),
        case(lab, next_item, [("id", y)], HIDDEN),
        case(out, next_item, [("id", x)], HIDDEN),
        case(res, next_item, [("id", x)], FORBIDDEN),
        case(adm, next_item, [("id", x)], FORBIDDEN),
        case(lab, next_item, [("id", x)], RAN),
        // An assignment is its labeler's alone.
        case(anon, judgment, pick(xa), SIGN_IN),
        case(out, judgment, pick(xa), HIDDEN),
        case(res, judgment, pick(xa), HIDDEN),
        case(adm, judgment, pick(xa), HIDDEN),
        case(lab, judgment, pick(ya), HIDDEN),
        // A judgment is changed by its labeler alone, while it is their last.
        case(anon, revise, change, SIGN_IN),
        case(out, revise, change, HIDDEN),
        case(res, revise, change, HIDDEN),
        case(adm, revise, change, HIDDEN),
        case(lab, revise, change, RAN),
        case(lab, judgment, pick(xa), RAN),
        case(anon, list_models, NONE, SIGN_IN),
        case(lab, list_models, NONE, FORBIDDEN),
        case(res, list_models, NONE, RAN),
        case(adm, list_models, NONE, RAN),
        case(anon, register_model, new_model("m-anon"), SIGN_IN),
        case(lab, register_model, new_model("m-lab"), FORBIDDEN),
        case(res, register_model, new_model("m-res"), FORBIDDEN),
        case(adm, register_model, new_model("m-adm"), RAN),
        case(anon, list_users, NONE, SIGN_IN),
        case(lab, list_users, NONE, FORBIDDEN),
        case(res, list_users, NONE, FORBIDDEN),
        case(adm, list_users, NONE, RAN),
        case(anon, invite_user, invite("a@x", "admin"), SIGN_IN),
        case(lab, invite_user, invite("b@x", "admin"), FORBIDDEN),
        case(res, invite_user, invite("c@x", "admin"), FORBIDDEN),
        case(adm, invite_user, invite("d@x", "labeler"), RAN),
        case(anon, set_disabled, disable(admin_id), SIGN_IN),
        case(lab, set_disabled, disable(admin_id), FORBIDDEN),
        case(res, set_disabled, disable(admin_id), FORBIDDEN),
        case(adm, set_disabled, disable(idle_id), RAN),
        // The invitation page asks before anyone is signed in: the secret is the right.
        case(anon, invite_email, [("secret", invitation)], RAN),
        case(lab, invite_email, [("secret", invitation)], RAN),
        case(anon, invite_email, [("secret", "pwi_guess")], unknown),
        // Exports: researchers and admins, of campaigns they analyse.
        case(anon, start_export, export(x), SIGN_IN),
        case(lab, start_export, export(x), FORBIDDEN),
        case(out, start_export, export(y), FORBIDDEN),
        case(res, start_export, export(y), HIDDEN),
        case(res, start_export, export(x), RAN),
        case(adm, start_export, export(y), RAN),
        case(anon, cancel_export, [("export", x_export)], SIGN_IN),
        case(lab, cancel_export, [("export", x_export)], HIDDEN),
        case(out, cancel_export, [("export", x_export)], HIDDEN),
        case(res, cancel_export, [("export", y_export)], HIDDEN),
        case(res, cancel_export, [("export", x_export)], finished),
        case(adm, cancel_export, [("export", x_export)], finished),
        case(anon, list_exports, NONE, SIGN_IN),
        case(lab, list_exports, NONE, FORBIDDEN),
        case(out, list_exports, NONE, FORBIDDEN),
        case(res, list_exports, NONE, RAN),
        case(adm, list_exports, NONE, RAN),
        // Generation: the campaign's managers (admins).
        case(anon, generation_view, [("id", x)], SIGN_IN),
        case(lab, generation_view, [("id", x)], FORBIDDEN),
        case(out, generation_view, [("id", x)], HIDDEN),
        case(res, generation_view, [("id", x)], FORBIDDEN),
        case(adm, generation_view, [("id", x)], RAN),
        case(anon, add_prompts, [("id", x), ("text", "Hello?")], SIGN_IN),
        case(lab, add_prompts, [("id", x), ("text", "Hello?")], FORBIDDEN),
        case(out, add_prompts, [("id", x), ("text", "Hello?")], HIDDEN),
        case(res, add_prompts, [("id", x), ("text", "Hello?")], FORBIDDEN),
        case(adm, add_prompts, [("id", x), ("text", "Hello?")], RAN),
        case(anon, start_generation, generate(x), SIGN_IN),
        case(lab, start_generation, generate(x), FORBIDDEN),
        case(out, start_generation, generate(x), HIDDEN),
        case(res, start_generation, generate(x), FORBIDDEN),
        case(adm, start_generation, generate(x), RAN),
        case(anon, regenerate, [("id", x)], SIGN_IN),
        case(lab, regenerate, [("id", x)], FORBIDDEN),
        case(out, regenerate, [("id", x)], HIDDEN),
        case(res, regenerate, [("id", x)], FORBIDDEN),
        case(
            adm,
            regenerate,
            [("id", x)],
            Want::Refused("no prompt of this campaign has only identical candidates"),
        ),
        case(anon, cancel_generation, [("job", job)], SIGN_IN),
        case(lab, cancel_generation, [("job", job)], FORBIDDEN),
        case(out, cancel_generation, [("job", job)], HIDDEN),
        case(res, cancel_generation, [("job", job)], FORBIDDEN),
        case(adm, cancel_generation, [("job", job)], RAN),
        // Training: on exports the caller may see.
        case(anon, start_training, train(x_export), SIGN_IN),
        case(lab, start_training, train(x_export), HIDDEN),
        case(out, start_training, train(x_export), HIDDEN),
        case(res, start_training, train(y_export), HIDDEN),
        case(res, start_training, train(x_export), RAN),
        case(adm, start_training, train(x_export), RAN),
        case(anon, list_training, NONE, SIGN_IN),
        case(lab, list_training, NONE, FORBIDDEN),
        case(res, list_training, NONE, RAN),
        case(adm, list_training, NONE, RAN),
        case(anon, cancel_training, [("run", x_run)], SIGN_IN),
        case(lab, cancel_training, [("run", x_run)], HIDDEN),
        case(out, cancel_training, [("run", x_run)], HIDDEN),
        case(res, cancel_training, [("run", y_run)], HIDDEN),
        case(res, cancel_training, [("run", x_run)], RAN),
        // The item browser: those who analyse the campaign.
        case(anon, list_items, browse(x), SIGN_IN),
        case(lab, list_items, browse(x), FORBIDDEN),
        case(out, list_items, browse(x), HIDDEN),
        case(res, list_items, browse(y), HIDDEN),
        case(res, list_items, browse(x), RAN),
        case(adm, list_items, browse(y), RAN),
        case(anon, get_item, [("id", x_item)], SIGN_IN),
        case(lab, get_item, [("id", x_item)], FORBIDDEN),
        case(out, get_item, [("id", x_item)], HIDDEN),
        case(res, get_item, [("id", x_item)], RAN),
        case(adm, get_item, [("id", x_item)], RAN),
        // Campaign settings, the archive and deletion: its managers (admins).
        case(anon, update_campaign, settings(z), SIGN_IN),
        case(lab, update_campaign, settings(x), FORBIDDEN),
        case(out, update_campaign, settings(x), HIDDEN),
        case(res, update_campaign, settings(x), FORBIDDEN),
        case(adm, update_campaign, settings(z), RAN),
        case(anon, set_archived, unarchive(z), SIGN_IN),
        case(lab, set_archived, unarchive(x), FORBIDDEN),
        case(out, set_archived, unarchive(x), HIDDEN),
        case(res, set_archived, unarchive(x), FORBIDDEN),
        case(adm, set_archived, unarchive(z), RAN),
        case(anon, remove_member, leave(y, spare_id.as_str()), SIGN_IN),
        case(lab, remove_member, leave(x, spare_id.as_str()), FORBIDDEN),
        case(out, remove_member, leave(x, spare_id.as_str()), HIDDEN),
        case(res, remove_member, leave(x, spare_id.as_str()), FORBIDDEN),
        case(anon, delete_campaign, [("id", z)], SIGN_IN),
        case(lab, delete_campaign, [("id", x)], FORBIDDEN),
        case(out, delete_campaign, [("id", x)], HIDDEN),
        case(res, delete_campaign, [("id", x)], FORBIDDEN),
        // Last: these take away what the cases above use.
        case(adm, remove_member, leave(y, spare_id.as_str()), RAN),
        case(adm, delete_campaign, [("id", z)], RAN),
    ];

    // Every server function is in the matrix, tried signed out and signed in: a new one
    // fails here until it is.
    let registered = registered();
    let unnamed: Vec<_> = registered
        .iter()
        .filter(|(_, path)| {
            let tried = |signed_out: bool| {
                cases
                    .iter()
                    .any(|c| c.function == *path && std::ptr::eq(c.caller, anon) == signed_out)
            };
            !tried(true) || !tried(false)
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "server functions the matrix does not try signed out and signed in: {unnamed:?}"
    );

    let mut failures = Vec::new();
    for c in &cases {
        let Some((method, _)) = registered.iter().find(|(_, path)| *path == c.function) else {
            failures.push(format!(
                "{}: no server function is served there",
                c.function
            ));
            continue;
        };
        let (status, answer) = c.caller.call(method, c.function, &c.args).await;
        if !c.want.holds(status, &answer) {
            failures.push(format!(
                "{} {method} {} {:?}: {status} {answer} (expected {:?})",
                c.caller.who, c.function, c.args, c.want
            ));
        }
    }
    // Cookie writes from another site are refused before any function runs.
    for (method, path) in registered.iter().filter(|(m, _)| *m != Method::GET) {
        let (status, _) = adm.post_form(path, &[], Some(EVIL)).await;
        if status != 403 {
            failures.push(format!(
                "admin {method} {path} from {EVIL}: {status} (expected 403)"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} server functions, {} calls",
        registered.len(),
        cases.len()
    );

    // And what ran shows each caller only their share.
    assert_eq!(anon.answer(Method::GET, whoami, &[]).await, Value::Null);
    assert_eq!(
        w.bad_token.answer(Method::GET, whoami, &[]).await,
        Value::Null
    );
    let me = w.labeler_token.answer(Method::GET, whoami, &[]).await;
    assert_eq!(me["email"], "lab@x", "{me}");
    let ids = |list: Value| -> Vec<String> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(ids(lab.answer(Method::GET, list_campaigns, &[]).await), [x]);
    assert_eq!(ids(out.answer(Method::GET, list_campaigns, &[]).await), [y]);
    assert_eq!(ids(res.answer(Method::GET, list_campaigns, &[]).await), [x]);
    let seen = lab.answer(Method::GET, campaign_view, &[("id", x)]).await;
    assert_eq!(
        (
            &seen["can_manage"],
            &seen["can_analyse"],
            &seen["can_label"]
        ),
        (&json!(false), &json!(false), &json!(true)),
        "{seen}"
    );
    assert!(
        seen["members"] == json!([]) && seen["stats"].is_null(),
        "a labeler sees neither members nor statistics: {seen}"
    );
    let seen = res.answer(Method::GET, campaign_view, &[("id", x)]).await;
    assert!(
        seen["members"] == json!([]) && seen["stats"].is_object(),
        "a researcher sees statistics, not members: {seen}"
    );
    let seen = adm.answer(Method::GET, campaign_view, &[("id", x)]).await;
    assert!(
        seen["members"].as_array().is_some_and(|m| !m.is_empty()),
        "{seen}"
    );
    let exports = ids(res.answer(Method::GET, list_exports, &[]).await);
    assert!(
        exports.contains(&w.x_export) && !exports.contains(&w.y_export),
        "a researcher lists their own exports only: {exports:?}"
    );
    let runs = ids(res.answer(Method::GET, list_training, &[]).await);
    assert!(
        runs.contains(&w.x_run) && !runs.contains(&w.y_run),
        "a researcher lists the runs on their own exports only: {runs:?}"
    );
    let users = adm.answer(Method::GET, list_users, &[]).await;
    let idle = users
        .as_array()
        .and_then(|all| all.iter().find(|u| u["email"] == "idle@x"))
        .expect("idle@x");
    assert_eq!(idle["disabled"], true, "{idle}");
    let admin = users
        .as_array()
        .and_then(|all| all.iter().find(|u| u["email"] == "admin@x"))
        .expect("admin@x");
    assert_eq!(
        admin["disabled"], false,
        "the refused calls changed nothing: {admin}"
    );
}

/// One post of the auth form matrix: who posts what to which form, from which site, and the
/// status and redirect they should get.
struct FormCase<'a> {
    caller: &'a Caller,
    path: String,
    fields: Vec<(&'static str, String)>,
    origin: Option<&'static str>,
    want: (u16, Option<String>),
}

fn form<'a, 'b>(
    caller: &'a Caller,
    path: impl Into<String>,
    fields: impl IntoIterator<Item = (&'static str, &'b str)>,
    origin: Option<&'static str>,
    want: (u16, Option<&str>),
) -> FormCase<'a> {
    FormCase {
        caller,
        path: path.into(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
        origin,
        want: (want.0, want.1.map(str::to_string)),
    }
}

/// From the site itself (a form names no other origin).
const SAME_SITE: Option<&str> = None;
const CROSS_SITE: Option<&str> = Some(EVIL);
/// A redirect to `location`.
fn to(location: &str) -> (u16, Option<&str>) {
    (303, Some(location))
}
const REFUSED: (u16, Option<&str>) = (403, None);
const UNKNOWN: (u16, Option<&str>) = (404, None);

/// The login, logout and invitation forms: open to anyone, who gets in only with what the
/// form asks for (the right password, an open invitation), and never from another site.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn auth_form_matrix(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = store::accounts::create_user(&pool, None, "admin@x", Role::Admin, None)
        .await
        .expect("admin");
    user(&pool, "lab@x", Role::Labeler).await;
    user(&pool, "idle@x", Role::Labeler).await;
    let (_, invitation) = store::accounts::invite_user(&pool, admin, "new@x", Role::Labeler)
        .await
        .expect("invite");
    let (_, revoked) = store::accounts::invite_user(&pool, admin, "gone@x", Role::Labeler)
        .await
        .expect("invite");
    sqlx::query("UPDATE users SET disabled = true WHERE email IN ('idle@x', 'gone@x')")
        .execute(&pool)
        .await
        .expect("disable");

    let stranger = Caller::signed_out(&server, "signed out");
    let newcomer = Caller::signed_out(&server, "newcomer");
    let invitee = Caller::signed_out(&server, "invitee");
    let leaver = Caller::signed_in(&server, "leaver", "lab@x").await;
    let session = leaver.session().expect("session");

    let login = "/auth/login";
    let logout = "/auth/logout";
    let signing_in = |email, password| [("email", email), ("password", password), ("next", "/c")];
    let right = signing_in("lab@x", PASSWORD);
    let wrong = signing_in("lab@x", "not the password");
    let nobody = signing_in("nobody@x", PASSWORD);
    let disabled = signing_in("idle@x", PASSWORD);
    let invalid = |email: &str| format!("/login?error=invalid&email={email}&next=%2Fc");
    let (lab_invalid, nobody_invalid, idle_invalid) = (
        invalid("lab%40x"),
        invalid("nobody%40x"),
        invalid("idle%40x"),
    );
    let invited = format!("/auth/invite/{invitation}");
    let revoked = format!("/auth/invite/{revoked}");
    let guessed = "/auth/invite/pwi_guess".to_string();
    let new_password = [("password", "a long new password")];
    let weak_password = format!("/invite/{invitation}?error=weak");
    let weak = to(&weak_password);
    let cases = vec![
        form(&stranger, login, right, CROSS_SITE, REFUSED),
        form(&stranger, login, wrong, SAME_SITE, to(&lab_invalid)),
        form(&stranger, login, nobody, SAME_SITE, to(&nobody_invalid)),
        // A disabled account does not sign in, even with its password.
        form(&stranger, login, disabled, SAME_SITE, to(&idle_invalid)),
        form(&newcomer, login, right, SAME_SITE, to("/c")),
        form(&stranger, logout, NONE, CROSS_SITE, REFUSED),
        form(&stranger, logout, NONE, SAME_SITE, to("/login")),
        form(&leaver, logout, NONE, CROSS_SITE, REFUSED),
        form(&leaver, logout, NONE, SAME_SITE, to("/login")),
        form(&stranger, &guessed, new_password, SAME_SITE, UNKNOWN),
        // An invitation of an account disabled since signs no one in.
        form(&stranger, &revoked, new_password, SAME_SITE, UNKNOWN),
        form(&invitee, &invited, new_password, CROSS_SITE, REFUSED),
        form(&invitee, &invited, [("password", "short")], SAME_SITE, weak),
        form(&invitee, &invited, new_password, SAME_SITE, to("/")),
        // An invitation is spent once.
        form(&stranger, &invited, new_password, SAME_SITE, UNKNOWN),
    ];
    // Every form route is in the matrix: a new one fails here until it is.
    let unnamed: Vec<_> = server::http::auth::ROUTES
        .iter()
        .filter(|(method, template)| {
            !method.eq_ignore_ascii_case("post")
                || !cases.iter().any(|c| instance_of(&c.path, template))
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "form routes the matrix does not name: {unnamed:?}"
    );

    let mut failures = Vec::new();
    for c in &cases {
        let fields: Vec<_> = c.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = c.caller.post_form(&c.path, &fields, c.origin).await;
        if answer != c.want {
            failures.push(format!(
                "{} POST {} {:?} from {}: {answer:?} (expected {:?})",
                c.caller.who,
                c.path,
                c.fields,
                c.origin.unwrap_or("the site"),
                c.want
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} form routes, {} posts",
        server::http::auth::ROUTES.len(),
        cases.len()
    );

    let whoami = path::<ui::Whoami>();
    let me = stranger.answer(Method::GET, whoami, &[]).await;
    assert_eq!(me, Value::Null, "no attempt signed the stranger in");
    assert_eq!(
        newcomer.answer(Method::GET, whoami, &[]).await["email"],
        "lab@x"
    );
    assert_eq!(
        invitee.answer(Method::GET, whoami, &[]).await["email"],
        "new@x"
    );
    assert!(leaver.session().is_none(), "logout drops the cookie");
    // And the session itself is gone: its cookie, sent again, signs no one in.
    let (status, answer) = server_fn_with_cookie(&server, whoami, &session).await;
    assert_eq!((status, answer.as_str()), (200, "null"));
    let again = Caller::signed_out(&server, "invitee again");
    let fields = [("email", "new@x"), new_password[0], ("next", "/")];
    let answer = again.post_form(login, &fields, SAME_SITE).await;
    assert_eq!(answer, (303, Some("/".into())), "the new password signs in");
}

/// Whether `path` is an instance of the route `template` (`{name}` segments match any one).
fn instance_of(path: &str, template: &str) -> bool {
    let (parts, pattern): (Vec<_>, Vec<_>) =
        (path.split('/').collect(), template.split('/').collect());
    parts.len() == pattern.len()
        && parts
            .iter()
            .zip(&pattern)
            .all(|(part, want)| want.starts_with('{') || part == want)
}

/// Calls a GET server function with a raw `Cookie` header.
async fn server_fn_with_cookie(server: &TestServer, path: &str, cookie: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
