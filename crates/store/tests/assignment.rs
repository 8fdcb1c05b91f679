//! Assigning variables to an automation and storing their resolved static values is one
//! transaction, on SQLite and (when `KEYWARD_TEST_DATABASE_URL` is set) PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{AutomationId, EnvVarId, OrgId, UserId};
use keyward_store::*;

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

async fn var(store: &dyn Store, org: OrgId, key: &str) -> EnvVarId {
    let row = EnvVarRow {
        id: EnvVarId::new_random(),
        org_id: org,
        key: key.into(),
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
    store.create_env_var(&row).await.unwrap();
    row.id
}

fn value(var: EnvVarId, sealed: u8) -> ResolvedValue {
    ResolvedValue {
        env_var_id: var,
        sealed_value: vec![sealed; 4],
        resolved_at: i64::from(sealed),
    }
}

async fn state(store: &dyn Store, org: OrgId, crew: AutomationId) -> (Vec<String>, Vec<u8>) {
    let keys = store
        .automation_env_vars(org, crew)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.key)
        .collect();
    let mut sealed: Vec<u8> = store
        .resolved_values(crew)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.sealed_value[0])
        .collect();
    sealed.sort();
    (keys, sealed)
}

#[tokio::test]
async fn an_assignment_and_its_resolved_values_land_together_or_not_at_all() {
    for f in stores().await {
        let s = f.store.as_ref();
        let backend = s.backend();
        let org = new_org(s, "assign").await;
        let other = new_org(s, "assign-other").await;
        let crew = AutomationRow {
            id: AutomationId::new_random(),
            org_id: org,
            name: "crew".into(),
            description: String::new(),
            created_at: 1,
            updated_at: 1,
        };
        s.create_automation(&crew).await.unwrap();
        let a = var(s, org, "A").await;
        let b = var(s, org, "B").await;
        let c = var(s, org, "C").await;
        let foreign = var(s, other, "FOREIGN").await;

        s.assign_env_vars_resolved(org, crew.id, &[a, b], &[value(a, 1)])
            .await
            .unwrap();
        let before = (vec!["A".to_owned(), "B".to_owned()], vec![1]);
        assert_eq!(state(s, org, crew.id).await, before, "{backend}");

        // The second part fails (the same variable's value twice breaks its primary key) after
        // the first has run inside the transaction: the new assignment is rolled back too.
        let failed = s
            .assign_env_vars_resolved(org, crew.id, &[c], &[value(c, 2), value(c, 3)])
            .await;
        assert!(
            matches!(failed, Err(StoreError::Database(_))),
            "{backend}: {failed:?}"
        );
        assert_eq!(state(s, org, crew.id).await, before, "{backend}");

        // The first part fails (another organization's variable): nothing changes either.
        let failed = s
            .assign_env_vars_resolved(org, crew.id, &[c, foreign], &[value(c, 4)])
            .await;
        assert!(
            matches!(failed, Err(StoreError::NotFound)),
            "{backend}: {failed:?}"
        );
        assert_eq!(state(s, org, crew.id).await, before, "{backend}");

        // A value of a variable that is not being assigned is refused before anything runs.
        let failed = s
            .assign_env_vars_resolved(org, crew.id, &[c], &[value(a, 5)])
            .await;
        assert!(
            matches!(failed, Err(StoreError::NotFound)),
            "{backend}: {failed:?}"
        );
        assert_eq!(state(s, org, crew.id).await, before, "{backend}");

        s.assign_env_vars_resolved(org, crew.id, &[c], &[value(c, 6)])
            .await
            .unwrap();
        assert_eq!(
            state(s, org, crew.id).await,
            (vec!["C".to_owned()], vec![6]),
            "{backend}"
        );
        s.assign_env_vars_resolved(org, crew.id, &[], &[])
            .await
            .unwrap();
        assert_eq!(
            state(s, org, crew.id).await,
            (Vec::new(), Vec::new()),
            "{backend}"
        );
    }
}
