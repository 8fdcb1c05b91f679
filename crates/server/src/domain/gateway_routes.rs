//! Gateway routes managed through the API (SPEC §9). A route is validated exactly as the gateway
//! validates a route file (`keyward_policy::route_from_json`: its upstream, limits, credential and
//! Cedar policy against the schema) before it is stored, so no replica ever loads a stored route
//! it would refuse.

use keyward_core::{GatewayRouteId, names};
use keyward_store::GatewayRouteRow;
use serde_json::{Value, json};

use super::{Taken, by_id_or_name, taken};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

/// The largest route definition stored (policies included).
const MAX_SPEC_BYTES: usize = 256 * 1024;

/// The route definition's fields, for the `field` of a 400 (the API's field names are static).
const FIELDS: [&str; 14] = [
    "name",
    "host",
    "path_prefix",
    "strip_prefix",
    "upstream",
    "upstream_ca",
    "accept",
    "policies",
    "policy",
    "no_match",
    "inspect_limit",
    "connect_timeout",
    "timeout",
    "credential",
];

fn field_of(reported: Option<&str>) -> &'static str {
    let reported = reported.unwrap_or("route");
    FIELDS
        .iter()
        .find(|f| {
            reported == **f
                || reported.starts_with(&format!("{f}."))
                || reported.starts_with(&format!("{f}["))
        })
        .copied()
        .unwrap_or("route")
}

/// Validates a definition; the name it carries is the route's name.
fn validated(spec: Value) -> Result<(String, Value, keyward_policy::Route), ApiError> {
    if !spec.is_object() {
        return Err(ApiError::invalid(
            "route",
            "a route is a JSON object: {\"name\": …, \"path_prefix\": …, \"upstream\": …}",
        ));
    }
    if spec.to_string().len() > MAX_SPEC_BYTES {
        return Err(ApiError::invalid(
            "route",
            format!(
                "the route definition is larger than {MAX_SPEC_BYTES} bytes; keep policies short or split the route"
            ),
        ));
    }
    let route = keyward_policy::route_from_json(&spec)
        .map_err(|e| ApiError::invalid(field_of(e.field.as_deref()), e.to_string()))?;
    names::validate_slug("name", &route.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    Ok((route.name.clone(), spec, route))
}

/// Every organization's stored routes share the gateways: a route matching exactly what another
/// stored route matches (same host and path prefix) would take its traffic, so it is refused.
/// The answer does not say whose the other route is.
async fn ensure_unclaimed(
    app: &AppState,
    route: &keyward_policy::Route,
    replacing: Option<GatewayRouteId>,
) -> Result<(), ApiError> {
    for row in app.store.all_gateway_routes().await? {
        if Some(row.id) == replacing {
            continue;
        }
        let Ok(other) = keyward_policy::route_from_json(&row.spec) else {
            continue;
        };
        if other.host == route.host && other.path_prefix == route.path_prefix {
            return Err(ApiError::Conflict {
                field: "path_prefix",
                message: format!(
                    "another gateway route already serves host {} and path prefix {}; choose another path_prefix or host",
                    route.host.as_deref().unwrap_or("(any)"),
                    route.path_prefix.as_deref().unwrap_or("(none)")
                ),
            });
        }
    }
    Ok(())
}

fn name_taken(name: &str) -> Taken {
    Taken {
        field: "name",
        message: format!("this organization already has a gateway route named '{name}'"),
        default: None,
    }
}

/// `{id}` is the route's UUID or its name.
pub(crate) async fn find_gateway_route(
    app: &AppState,
    caller: &Caller,
    id_or_name: &str,
) -> Result<GatewayRouteRow, ApiError> {
    let org = caller.org()?.id;
    by_id_or_name(
        id_or_name,
        "gateway route",
        |id: GatewayRouteId| app.store.get_gateway_route(org, id),
        |name| async move {
            let rows = app.store.list_gateway_routes(org).await?;
            Ok(rows.into_iter().find(|r| r.name == name))
        },
    )
    .await
}

pub(crate) async fn list_gateway_routes(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<GatewayRouteRow>, ApiError> {
    Ok(app.store.list_gateway_routes(caller.org()?.id).await?)
}

pub(crate) async fn create_gateway_route(
    app: &AppState,
    caller: &Caller,
    spec: Value,
) -> Result<GatewayRouteRow, ApiError> {
    let (name, spec, route) = validated(spec)?;
    ensure_unclaimed(app, &route, None).await?;
    let row = GatewayRouteRow {
        id: GatewayRouteId::new_random(),
        org_id: caller.org()?.id,
        name,
        spec,
        created_at: caller.now,
        updated_at: caller.now,
    };
    app.store
        .create_gateway_route(&row)
        .await
        .map_err(|e| taken(e, name_taken(&row.name)))?;
    record(app, caller, kind::GATEWAY_ROUTE_CREATED, &row).await?;
    Ok(row)
}

/// Replaces the definition (a route is small; a partial update would let a stale policy
/// survive a change of upstream unnoticed).
pub(crate) async fn replace_gateway_route(
    app: &AppState,
    caller: &Caller,
    existing: GatewayRouteRow,
    spec: Value,
) -> Result<GatewayRouteRow, ApiError> {
    let (name, spec, route) = validated(spec)?;
    ensure_unclaimed(app, &route, Some(existing.id)).await?;
    let row = GatewayRouteRow {
        name,
        spec,
        // Replicas reload when this moves; a change within the same second must still move it.
        updated_at: caller.now.max(existing.updated_at + 1),
        ..existing
    };
    app.store
        .update_gateway_route(&row)
        .await
        .map_err(|e| taken(e, name_taken(&row.name)))?;
    record(app, caller, kind::GATEWAY_ROUTE_UPDATED, &row).await?;
    Ok(row)
}

pub(crate) async fn delete_gateway_route(
    app: &AppState,
    caller: &Caller,
    row: &GatewayRouteRow,
) -> Result<(), ApiError> {
    app.store
        .delete_gateway_route(row.org_id, row.id)
        .await
        .map_err(or_not_found("gateway route"))?;
    record(app, caller, kind::GATEWAY_ROUTE_DELETED, row).await
}

async fn record(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &GatewayRouteRow,
) -> Result<(), ApiError> {
    // The definition names no secret (credentials are references), so it is recorded whole:
    // an auditor sees which policy a route had when.
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({"route_id": row.id, "name": row.name, "route": row.spec}),
        )
        .await?;
    Ok(())
}

/// A stored route checked again as a gateway would load it now (the policy schema or the
/// validation rules may have changed since it was stored): the route, or why it is refused.
pub(crate) fn check_stored(row: &GatewayRouteRow) -> Result<keyward_policy::Route, String> {
    validated(row.spec.clone())
        .map(|(_, _, route)| route)
        .map_err(|e| e.status_and_message().1)
}
