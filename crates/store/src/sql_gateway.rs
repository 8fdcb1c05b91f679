//! SQL for gateway routes, shared by both backends like [`crate::sql`]; implements
//! [`GatewayStore`](crate::GatewayStore).

macro_rules! impl_gateway_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{GatewayRouteId, OrgId};
            use sqlx::Row as _;

            use crate::gateway::{GatewayRouteRow, GatewayStore};
            use crate::sql::{conflict, expect_one, parse_id};
            use crate::{Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            fn route_row(r: &DbRow) -> Result<GatewayRouteRow> {
                let spec: String = r.try_get("spec")?;
                Ok(GatewayRouteRow {
                    id: parse_id("gateway_routes.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("gateway_routes.org_id", &r.try_get::<String, _>("org_id")?)?,
                    name: r.try_get("name")?,
                    spec: serde_json::from_str(&spec).map_err(|_| {
                        StoreError::Corrupt("gateway_routes.spec is not JSON".into())
                    })?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            #[async_trait]
            impl GatewayStore for $store {
                async fn create_gateway_route(&self, g: &GatewayRouteRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO gateway_routes (id, org_id, name, spec, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(g.id.to_string())
                    .bind(g.org_id.to_string())
                    .bind(&g.name)
                    .bind(g.spec.to_string())
                    .bind(g.created_at)
                    .bind(g.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("name"))?;
                    Ok(())
                }

                async fn get_gateway_route(
                    &self,
                    org: OrgId,
                    id: GatewayRouteId,
                ) -> Result<GatewayRouteRow> {
                    let row = sqlx::query(
                        "SELECT id, org_id, name, spec, created_at, updated_at FROM gateway_routes WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(route_row).transpose()?.ok_or(StoreError::NotFound)
                }

                async fn list_gateway_routes(&self, org: OrgId) -> Result<Vec<GatewayRouteRow>> {
                    sqlx::query(
                        "SELECT id, org_id, name, spec, created_at, updated_at FROM gateway_routes WHERE org_id = $1 ORDER BY name",
                    )
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(route_row)
                    .collect()
                }

                async fn update_gateway_route(&self, g: &GatewayRouteRow) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE gateway_routes SET name = $1, spec = $2, updated_at = $3 \
                         WHERE org_id = $4 AND id = $5",
                    )
                    .bind(&g.name)
                    .bind(g.spec.to_string())
                    .bind(g.updated_at)
                    .bind(g.org_id.to_string())
                    .bind(g.id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("name"))?;
                    expect_one(done.rows_affected())
                }

                async fn delete_gateway_route(&self, org: OrgId, id: GatewayRouteId) -> Result<()> {
                    let done = sqlx::query("DELETE FROM gateway_routes WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await?;
                    expect_one(done.rows_affected())
                }

                async fn all_gateway_routes(&self) -> Result<Vec<GatewayRouteRow>> {
                    sqlx::query(
                        "SELECT id, org_id, name, spec, created_at, updated_at FROM gateway_routes ORDER BY created_at, id",
                    )
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(route_row)
                    .collect()
                }
            }
        };
    };
}

pub(crate) use impl_gateway_store;
