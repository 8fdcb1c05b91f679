//! `/api/v1/gateway/routes`: the routes a gateway without a route file serves.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::gateway::GatewayRoute;
use keyward_store::GatewayRouteRow;
use serde_json::Value;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::gateway_routes::{
    create_gateway_route, delete_gateway_route, find_gateway_route, list_gateway_routes,
    replace_gateway_route,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn wire(row: GatewayRouteRow) -> GatewayRoute {
    GatewayRoute {
        id: row.id,
        name: row.name,
        route: row.spec,
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GatewayRoute>>, ApiError> {
    let rows = list_gateway_routes(&app, &caller).await?;
    Ok(Json(rows.into_iter().map(wire).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GatewayRoute>, ApiError> {
    Ok(Json(wire(find_gateway_route(&app, &caller, &id).await?)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<GatewayRoute>), ApiError> {
    let row = create_gateway_route(&app, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(wire(row))))
}

pub async fn replace(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<GatewayRoute>, ApiError> {
    let existing = find_gateway_route(&app, &caller, &id).await?;
    Ok(Json(wire(
        replace_gateway_route(&app, &caller, existing, body).await?,
    )))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find_gateway_route(&app, &caller, &id).await?;
    delete_gateway_route(&app, &caller, &row).await?;
    Ok(StatusCode::NO_CONTENT)
}
