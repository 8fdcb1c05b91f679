//! `/api/v1/gateway/routes`: routes the gateway serves when it runs without a route file.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::GatewayRouteId;

/// A stored route. `route` is its definition, the JSON form of one `[[route]]` table of a route
/// file (inline `policy` only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GatewayRoute {
    pub id: GatewayRouteId,
    pub name: String,
    pub route: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
