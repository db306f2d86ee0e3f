//! The Pairwise web UI (Leptos, server-rendered and hydrated). Server functions here are thin:
//! they parse the input and call the `ops` crate.

pub mod api;
mod exports;
mod generation;
mod label;
#[cfg(feature = "ssr")]
pub mod markdown;
mod pages;
#[cfg(feature = "ssr")]
pub mod security;
mod training;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    security::send_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/pairwise.css"/>
        <Title text="Pairwise"/>
        <Router>
            <pages::Nav/>
            <main>
                <Routes fallback=|| view! { <p class="notice">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::HomePage/>
                    <Route path=path!("/login") view=pages::LoginPage/>
                    <Route path=path!("/users") view=pages::UsersPage/>
                    <Route path=path!("/exports") view=exports::ExportsPage/>
                    <Route path=path!("/invite/:secret") view=pages::InvitePage/>
                    <Route path=path!("/campaigns/new") view=pages::NewCampaignPage/>
                    <Route path=path!("/campaigns/:id") view=pages::CampaignPage/>
                    <Route path=path!("/campaigns/:id/label") view=label::LabelPage/>
                    <Route path=path!("/campaigns/:id/generate") view=generation::GenerationPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
