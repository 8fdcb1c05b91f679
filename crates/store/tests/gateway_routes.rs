//! Gateway routes: one organization's rows are invisible to another, names are unique per
//! organization, and `all_gateway_routes` gives every organization's — on SQLite and (when
//! `KEYWARD_TEST_DATABASE_URL` is set) PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{GatewayRouteId, OrgId, UserId};
use keyward_store::*;
use serde_json::json;

mod common;
use common::stores;

async fn new_org(store: &dyn Store, name: &str) -> OrgId {
    let user = UserRow {
        id: UserId::new_random(),
        email: format!("{name}@example.com"),
        created_at: 1,
    };
    store.create_user(&user).await.unwrap();
    let org = OrgRow {
        id: OrgId::new_random(),
        name: name.into(),
        created_at: 1,
    };
    store.create_org(&org, user.id, "owner").await.unwrap();
    org.id
}

fn route(org: OrgId, name: &str, at: i64) -> GatewayRouteRow {
    GatewayRouteRow {
        id: GatewayRouteId::new_random(),
        org_id: org,
        name: name.into(),
        spec: json!({"name": name, "path_prefix": format!("/{name}"), "upstream": "http://127.0.0.1:9/"}),
        created_at: at,
        updated_at: at,
    }
}

#[tokio::test]
async fn gateway_routes_are_scoped_to_their_organization() {
    for f in stores().await {
        let s = f.store.as_ref();
        let backend = s.backend();
        let org = new_org(s, "gw").await;
        let other = new_org(s, "gw-other").await;
        let a = route(org, "openai", 1);
        s.create_gateway_route(&a).await.unwrap();
        s.create_gateway_route(&route(other, "openai", 2))
            .await
            .unwrap();
        assert!(
            matches!(
                s.create_gateway_route(&route(org, "openai", 3)).await,
                Err(StoreError::Conflict { field: "name" })
            ),
            "{backend}: a second route of the same name in one organization is a conflict"
        );
        assert_eq!(
            s.get_gateway_route(org, a.id).await.unwrap(),
            a,
            "{backend}"
        );
        assert!(
            matches!(
                s.get_gateway_route(other, a.id).await,
                Err(StoreError::NotFound)
            ),
            "{backend}: another organization's route is not found"
        );
        assert!(matches!(
            s.delete_gateway_route(other, a.id).await,
            Err(StoreError::NotFound)
        ));

        let mut changed = a.clone();
        changed.spec =
            json!({"name": "openai", "path_prefix": "/v2", "upstream": "http://127.0.0.1:9/"});
        changed.updated_at = 10;
        s.update_gateway_route(&changed).await.unwrap();
        assert_eq!(
            s.list_gateway_routes(org).await.unwrap(),
            vec![changed.clone()]
        );
        assert_eq!(s.all_gateway_routes().await.unwrap().len(), 2, "{backend}");

        s.delete_gateway_route(org, a.id).await.unwrap();
        assert!(s.list_gateway_routes(org).await.unwrap().is_empty());
        assert_eq!(s.all_gateway_routes().await.unwrap().len(), 1);
    }
}
