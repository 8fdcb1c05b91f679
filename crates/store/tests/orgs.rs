//! Listing every organization (the startup check of stored environment variables, review H4),
//! on both backends.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::stores;
use keyward_core::{OrgId, UserId};
use keyward_store::{OrgRow, UserRow};

#[tokio::test]
async fn every_organization_is_listed_oldest_first() {
    for f in stores().await {
        let s = f.store.as_ref();
        assert_eq!(s.list_orgs().await.unwrap(), Vec::new(), "{}", s.backend());
        let user = UserRow {
            id: UserId::new_random(),
            email: "o@example.com".into(),
            created_at: 1,
        };
        s.create_user(&user).await.unwrap();
        let orgs = [("later", 9), ("first", 5), ("middle", 7)].map(|(name, created_at)| OrgRow {
            id: OrgId::new_random(),
            name: name.into(),
            created_at,
        });
        for org in &orgs {
            s.create_org(org, user.id, "owner").await.unwrap();
        }
        let names: Vec<String> = s
            .list_orgs()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["first", "middle", "later"], "{}", s.backend());
        let listed = s.list_orgs().await.unwrap();
        assert!(listed.contains(&orgs[0]), "{listed:?}");
    }
}
