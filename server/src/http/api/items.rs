//! The item browser: a campaign's items, and one item with every judgment on it.

use axum::extract::State;
use axum::Json;
use domain::{ItemDetail, ItemPage, ItemQuery};
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ItemQuery>,
) -> ApiResult<Json<ItemPage>> {
    Ok(Json(ops::items::list(&state.ops, &user, id, &query).await?))
}

pub async fn get(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ItemDetail>> {
    Ok(Json(ops::items::get(&state.ops, &user, id).await?))
}
