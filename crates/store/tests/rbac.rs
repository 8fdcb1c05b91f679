//! Roles, members and entity permissions, on SQLite and (when `KEYWARD_TEST_DATABASE_URL` is
//! set) PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{AutomationId, EnvVarId, OrgId, RoleId, UserId};
use keyward_store::*;

mod common;
use common::stores;

async fn user(store: &dyn Store, email: &str) -> UserId {
    let row = UserRow {
        id: UserId::new_random(),
        email: email.into(),
        created_at: 1,
    };
    store.create_user(&row).await.unwrap();
    row.id
}

async fn org_with_owner(store: &dyn Store, name: &str) -> (OrgId, UserId) {
    let owner = user(store, &format!("owner@{name}.example")).await;
    let org = OrgRow {
        id: OrgId::new_random(),
        name: name.into(),
        created_at: 1,
    };
    store.create_org(&org, owner, "owner").await.unwrap();
    (org.id, owner)
}

fn custom(org: OrgId, name: &str, grants: &str) -> RoleRow {
    RoleRow {
        id: RoleId::new_random(),
        org_id: org,
        name: name.into(),
        description: String::new(),
        grants: grants.into(),
        predefined: false,
        created_at: 2,
        updated_at: 2,
    }
}

async fn automation(store: &dyn Store, org: OrgId, name: &str) -> AutomationId {
    let row = AutomationRow {
        id: AutomationId::new_random(),
        org_id: org,
        name: name.into(),
        description: String::new(),
        created_at: 1,
        updated_at: 1,
    };
    store.create_automation(&row).await.unwrap();
    row.id
}

#[tokio::test]
async fn every_organization_has_owner_and_member_and_custom_roles_stay_in_theirs() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (a, _) = org_with_owner(s, "a").await;
        let (b, _) = org_with_owner(s, "b").await;
        let names: Vec<String> = s
            .list_roles(a)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["owner", "member"], "{}", s.backend());
        assert!(s.list_roles(a).await.unwrap().iter().all(|r| r.predefined));

        let dev = custom(a, "developer", r#"{"crews_dashboards":"manage"}"#);
        s.create_role(&dev).await.unwrap();
        assert!(matches!(
            s.create_role(&custom(a, "developer", "{}")).await,
            Err(StoreError::Conflict { field: "name" })
        ));
        // The same name in another organization is another role.
        s.create_role(&custom(b, "developer", "{}")).await.unwrap();
        assert!(matches!(
            s.get_role(b, dev.id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.get_role(a, dev.id).await.unwrap(), dev);
        assert_eq!(
            s.find_role_by_name(a, "developer").await.unwrap(),
            Some(dev)
        );
    }
}

#[tokio::test]
async fn members_follow_a_rename_and_a_held_role_is_deleted_only_by_moving_them() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (org, _) = org_with_owner(s, "acme").await;
        let alice = user(s, "alice@acme.example").await;
        let mut ops = custom(org, "ops", "{}");
        s.create_role(&ops).await.unwrap();
        s.add_member(org, alice, "ops", 5).await.unwrap();
        assert!(matches!(
            s.add_member(org, alice, "member", 6).await,
            Err(StoreError::Conflict { field: "email" })
        ));

        ops.name = "platform".into();
        ops.updated_at = 9;
        s.update_role(&ops, "ops").await.unwrap();
        let alice_row = s
            .list_members(org)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.user.id == alice)
            .unwrap();
        assert_eq!(
            (alice_row.role.as_str(), alice_row.joined_at),
            ("platform", 5)
        );

        assert!(matches!(
            s.delete_role(org, ops.id, None).await,
            Err(StoreError::InUse)
        ));
        s.delete_role(org, ops.id, Some("member")).await.unwrap();
        assert_eq!(
            s.membership(org, alice).await.unwrap().unwrap().role,
            "member"
        );
        assert!(matches!(
            s.get_role(org, ops.id).await,
            Err(StoreError::NotFound)
        ));

        s.set_member_role(org, alice, "owner").await.unwrap();
        assert_eq!(
            s.membership(org, alice).await.unwrap().unwrap().role,
            "owner"
        );
        s.remove_member(org, alice).await.unwrap();
        assert!(s.membership(org, alice).await.unwrap().is_none());
        assert!(matches!(
            s.remove_member(org, alice).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test]
async fn automation_access_is_replaced_whole_and_only_in_its_organization() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (org, _) = org_with_owner(s, "acme").await;
        let (other, _) = org_with_owner(s, "other").await;
        let bob = user(s, "bob@acme.example").await;
        s.add_member(org, bob, "member", 1).await.unwrap();
        let crew = automation(s, org, "crew").await;
        let member_role = s.find_role_by_name(org, "member").await.unwrap().unwrap();

        assert_eq!(
            s.automation_access(org, crew).await.unwrap(),
            AutomationAccessRow::default()
        );
        let access = AutomationAccessRow {
            private: true,
            grants: vec![
                AutomationGrantRow {
                    principal: PrincipalRef::User(bob),
                    whitelisted: true,
                    permissions: vec!["run".into(), "traces".into()],
                },
                AutomationGrantRow {
                    principal: PrincipalRef::Role(member_role.id),
                    whitelisted: false,
                    permissions: vec!["full_access".into()],
                },
            ],
        };
        s.set_automation_access(org, crew, &access).await.unwrap();
        let mut got = s.automation_access(org, crew).await.unwrap();
        got.grants.sort_by_key(|g| g.principal);
        let mut want = access.clone();
        want.grants.sort_by_key(|g| g.principal);
        assert_eq!(got, want, "{}", s.backend());
        assert_eq!(s.org_automation_access(org).await.unwrap().len(), 1);

        // Another organization neither reads nor writes it.
        assert_eq!(
            s.automation_access(other, crew).await.unwrap(),
            AutomationAccessRow::default()
        );
        assert!(matches!(
            s.set_automation_access(other, crew, &AutomationAccessRow::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(s.org_automation_access(other).await.unwrap().is_empty());

        // Leaving the organization takes the person's grants along.
        s.remove_member(org, bob).await.unwrap();
        let left = s.automation_access(org, crew).await.unwrap();
        assert!(left.private);
        assert_eq!(left.grants.len(), 1);
        assert_eq!(left.grants[0].principal, PrincipalRef::Role(member_role.id));

        s.set_automation_access(org, crew, &AutomationAccessRow::default())
            .await
            .unwrap();
        assert_eq!(
            s.automation_access(org, crew).await.unwrap(),
            AutomationAccessRow::default()
        );
    }
}

#[tokio::test]
async fn access_lists_name_users_and_roles_and_go_with_their_variable() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (org, owner) = org_with_owner(s, "acme").await;
        let (other, _) = org_with_owner(s, "other").await;
        let var = EnvVarRow {
            id: EnvVarId::new_random(),
            org_id: org,
            key: "API_KEY".into(),
            source: "direct".into(),
            provider: None,
            credential_id: None,
            secret_name: None,
            secret: false,
            value: Some("v".into()),
            sealed_value: None,
            created_at: 1,
            updated_at: 1,
        };
        s.create_env_var(&var).await.unwrap();
        let kind = AccessListed::EnvironmentVariable;
        assert!(s.access_list(org, kind, var.id.0).await.unwrap().is_empty());
        let ops = custom(org, "ops", "{}");
        s.create_role(&ops).await.unwrap();
        let list = [PrincipalRef::User(owner), PrincipalRef::Role(ops.id)];
        s.set_access_list(org, kind, var.id.0, &list).await.unwrap();
        let mut got = s.access_list(org, kind, var.id.0).await.unwrap();
        got.sort();
        let mut want = list.to_vec();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(s.org_access_lists(org, kind).await.unwrap().len(), 2);
        assert!(
            s.access_list(other, kind, var.id.0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.set_access_list(other, kind, var.id.0, &[]).await,
            Err(StoreError::NotFound)
        ));
        // A deleted role leaves the list; a deleted variable takes its list along.
        s.delete_role(org, ops.id, None).await.unwrap();
        assert_eq!(
            s.access_list(org, kind, var.id.0).await.unwrap(),
            [PrincipalRef::User(owner)]
        );
        s.delete_env_var(org, var.id).await.unwrap();
        assert!(s.org_access_lists(org, kind).await.unwrap().is_empty());
    }
}

/// Organizations created before migration 0005 get Owner and Member from the migration itself:
/// undo it on a migrated database, re-run it, and look.
#[tokio::test]
async fn the_migration_gives_existing_organizations_their_predefined_roles() {
    for f in stores().await {
        let (org, owner) = org_with_owner(f.store.as_ref(), "old").await;
        let undo = [
            "DROP TABLE automation_grants",
            "DROP TABLE automation_visibility",
            "DROP TABLE environment_variable_access",
            "DROP TABLE llm_connection_access",
            "DROP TABLE roles",
            "DROP INDEX memberships_org_role",
            "DELETE FROM _sqlx_migrations WHERE version = 5",
        ];
        let store = match &f.url {
            None => {
                let path = f.dir.path().join("keyward.db");
                let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
                    "sqlite:{}",
                    path.display()
                ))
                .await
                .unwrap();
                for sql in undo {
                    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
                }
                drop(f.store);
                open(None, f.dir.path()).await.unwrap()
            }
            Some(url) => {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                    .await
                    .unwrap();
                for sql in undo {
                    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
                }
                open(Some(url), f.dir.path()).await.unwrap()
            }
        };
        let roles = store.list_roles(org).await.unwrap();
        let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["owner", "member"], "{}", store.backend());
        assert!(
            roles
                .iter()
                .all(|r| r.predefined && r.id.0.get_version_num() == 4)
        );
        assert_eq!(
            store.membership(org, owner).await.unwrap().unwrap().role,
            "owner"
        );
    }
}

#[tokio::test]
async fn the_last_owner_is_neither_demoted_nor_removed_even_concurrently() {
    for f in stores().await {
        let s = f.store.clone();
        let (org, first) = org_with_owner(s.as_ref(), "acme").await;
        assert!(matches!(
            s.set_member_role(org, first, "member").await,
            Err(StoreError::LastOwner)
        ));
        assert!(matches!(
            s.remove_member(org, first).await,
            Err(StoreError::LastOwner)
        ));
        assert_eq!(
            s.membership(org, first).await.unwrap().unwrap().role,
            "owner"
        );

        // Two owners demoting each other at once: exactly one succeeds, every time.
        let second = user(s.as_ref(), "second@acme.example").await;
        s.add_member(org, second, "owner", 2).await.unwrap();
        for round in 0..20 {
            s.set_member_role(org, first, "owner").await.unwrap();
            s.set_member_role(org, second, "owner").await.unwrap();
            let (a, b) = tokio::join!(
                s.set_member_role(org, first, "member"),
                s.set_member_role(org, second, "member")
            );
            assert!(
                a.is_ok() ^ b.is_ok(),
                "round {round}: {a:?} {b:?} ({})",
                s.backend()
            );
            let owners = s
                .list_members(org)
                .await
                .unwrap()
                .into_iter()
                .filter(|m| m.role == "owner")
                .count();
            assert_eq!(owners, 1);
        }
    }
}
