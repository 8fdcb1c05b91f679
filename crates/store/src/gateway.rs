//! Gateway routes managed through the API (SPEC §9): the platform stores them, every gateway
//! replica reads them all.

use async_trait::async_trait;
use keyward_core::{GatewayRouteId, OrgId};

use crate::Result;

/// One stored route. `spec` is the route's JSON as the API validated it.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayRouteRow {
    pub id: GatewayRouteId,
    pub org_id: OrgId,
    pub name: String,
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait GatewayStore: Send + Sync {
    /// `Conflict { field: "name" }` when the organization has a route of that name.
    async fn create_gateway_route(&self, row: &GatewayRouteRow) -> Result<()>;
    async fn get_gateway_route(&self, org: OrgId, id: GatewayRouteId) -> Result<GatewayRouteRow>;
    async fn list_gateway_routes(&self, org: OrgId) -> Result<Vec<GatewayRouteRow>>;
    /// Replaces name and spec; `Conflict { field: "name" }` as for create.
    async fn update_gateway_route(&self, row: &GatewayRouteRow) -> Result<()>;
    async fn delete_gateway_route(&self, org: OrgId, id: GatewayRouteId) -> Result<()>;
    /// Every organization's routes, oldest first: what a gateway without a route file serves.
    async fn all_gateway_routes(&self) -> Result<Vec<GatewayRouteRow>>;
}
