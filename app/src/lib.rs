//! The Pairwise web UI (Leptos, server-rendered and hydrated). Server functions here are thin:
//! they parse the input and call the `ops` crate.

pub mod api;
pub mod errors;
mod exports;
mod generation;
mod items;
mod label;
#[cfg(feature = "ssr")]
pub mod markdown;
mod models;
mod pages;
#[cfg(feature = "ssr")]
pub mod security;
mod training;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
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
        // Each page's title, beside its route: "Exports · Pairwise".
        <Title formatter=|page: String| format!("{page} · Pairwise")/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Router>
            <pages::Nav/>
            <main>
                <Routes fallback=|| view! { <Title text="Page not found"/><pages::NotFoundPage/> }>
                    <Route path=path!("/") view=|| view! { <Title text="Campaigns"/><pages::HomePage/> }/>
                    <Route path=path!("/login") view=|| view! { <Title text="Sign in"/><pages::LoginPage/> }/>
                    <Route path=path!("/users") view=|| view! { <Title text="Users"/><pages::UsersPage/> }/>
                    <Route path=path!("/models") view=|| view! { <Title text="Models"/><models::ModelsPage/> }/>
                    <Route path=path!("/exports") view=|| view! { <Title text="Exports and training"/><exports::ExportsPage/> }/>
                    <Route path=path!("/invite/:secret") view=|| view! { <Title text="Invitation"/><pages::InvitePage/> }/>
                    <Route path=path!("/campaigns/new") view=|| view! { <Title text="New campaign"/><pages::NewCampaignPage/> }/>
                    <Route path=path!("/campaigns/:id") view=|| view! { <Title text="Campaign"/><pages::CampaignPage/> }/>
                    <Route path=path!("/campaigns/:id/label") view=|| view! { <Title text="Labeling"/><label::LabelPage/> }/>
                    <Route path=path!("/campaigns/:id/items") view=|| view! { <Title text="Items"/><items::ItemsPage/> }/>
                    <Route path=path!("/items/:id") view=|| view! { <Title text="Item"/><items::ItemPage/> }/>
                    <Route path=path!("/campaigns/:id/generate") view=|| view! { <Title text="Prompts and generation"/><generation::GenerationPage/> }/>
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
