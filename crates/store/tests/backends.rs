//! One test body per behaviour, run against SQLite and (when `KEYWARD_TEST_DATABASE_URL` is set)
//! PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{AutomationId, OrgId, TokenId, UserId};
use keyward_store::audit::ChainVerifier;
use keyward_store::*;

mod common;
use common::stores;

async fn org_with_owner(store: &dyn Store, name: &str) -> (OrgId, UserId) {
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
    (org.id, user.id)
}

fn automation(org: OrgId, name: &str) -> AutomationRow {
    AutomationRow {
        id: AutomationId::new_random(),
        org_id: org,
        name: name.into(),
        description: String::new(),
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn rows_of_another_organization_are_not_found() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (a, user_a) = org_with_owner(s, "a").await;
        let (b, _) = org_with_owner(s, "b").await;
        let crew = automation(a, "crew");
        s.create_automation(&crew).await.unwrap();
        assert_eq!(s.get_automation(a, crew.id).await.unwrap(), crew);
        assert!(
            matches!(
                s.get_automation(b, crew.id).await,
                Err(StoreError::NotFound)
            ),
            "{}",
            s.backend()
        );
        assert_eq!(s.find_automation_by_name(b, "crew").await.unwrap(), None);
        assert!(s.list_automations(b).await.unwrap().is_empty());
        assert!(matches!(
            s.delete_automation(b, crew.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(s.membership(b, user_a).await.unwrap().is_none());
        // The same name is free in another organization, taken in the same one.
        s.create_automation(&automation(b, "crew")).await.unwrap();
        assert!(matches!(
            s.create_automation(&automation(a, "crew")).await,
            Err(StoreError::Conflict { field: "name" })
        ));
    }
}

#[tokio::test]
async fn tokens_are_found_by_hash_and_revoked_only_by_their_owner() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (org, user) = org_with_owner(s, "t").await;
        let (other_org, other_user) = org_with_owner(s, "u").await;
        let crew = automation(org, "crew");
        s.create_automation(&crew).await.unwrap();
        let token = TokenRow {
            id: TokenId::new_random(),
            kind: TokenKind::Automation,
            hash: secret::hash_token("kwa_secret"),
            prefix: "kwa_secret".into(),
            name: "ci".into(),
            user_id: None,
            org_id: Some(org),
            automation_id: Some(crew.id),
            created_at: 10,
            expires_at: Some(100),
            revoked_at: None,
        };
        s.insert_token(&token).await.unwrap();
        let found = s
            .token_by_hash(&secret::hash_token("kwa_secret"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, token);
        assert!(found.is_live(99) && !found.is_live(100));
        assert!(
            s.revoke_automation_token(other_org, crew.id, token.id, 50)
                .await
                .is_err()
        );
        assert!(
            s.revoke_personal_token(other_user, token.id, 50)
                .await
                .is_err()
        );
        let revoked = s
            .revoke_automation_token(org, crew.id, token.id, 50)
            .await
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(50));
        // Revoking twice keeps the first time.
        let again = s
            .revoke_automation_token(org, crew.id, token.id, 60)
            .await
            .unwrap();
        assert_eq!(again.revoked_at, Some(50));
        assert!(s.list_personal_tokens(user).await.unwrap().is_empty());
        let pat = TokenRow {
            id: TokenId::new_random(),
            kind: TokenKind::Personal,
            hash: secret::hash_token("kwp_secret"),
            user_id: Some(user),
            org_id: None,
            automation_id: None,
            ..token.clone()
        };
        s.insert_token(&pat).await.unwrap();
        let resolved = s.resolve_token(&pat.hash).await.unwrap().unwrap();
        assert_eq!(resolved.user.map(|u| u.id), Some(user));
        assert_eq!(resolved.automation, None);
        // Deleting the automation deletes its tokens.
        s.delete_automation(org, crew.id).await.unwrap();
        assert_eq!(s.token_by_hash(&token.hash).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_lease_is_exclusive_until_it_expires() {
    for f in stores().await {
        let s = f.store.as_ref();
        assert!(s.try_lease("rotation", "a", 100, 10).await.unwrap());
        assert!(
            !s.try_lease("rotation", "b", 105, 10).await.unwrap(),
            "{}",
            s.backend()
        );
        assert!(
            s.try_lease("rotation", "a", 105, 10).await.unwrap(),
            "the holder renews"
        );
        assert!(!s.try_lease("rotation", "b", 114, 10).await.unwrap());
        assert!(
            s.try_lease("rotation", "b", 115, 10).await.unwrap(),
            "taken over after expiry"
        );
        assert!(!s.try_lease("rotation", "a", 116, 10).await.unwrap());
    }
}

#[tokio::test]
async fn concurrent_audit_appends_form_one_unbroken_chain() {
    let key = keyward_store::crypto::MasterKey::generate()
        .unwrap()
        .0
        .audit_key();
    for f in stores().await {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = f.store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let event = NewAuditEvent {
                        at_ms: i,
                        kind: "test.event".into(),
                        org_id: None,
                        actor: format!("task:{t}"),
                        data: serde_json::json!({"i": i}),
                    };
                    store
                        .append_audit(&key, std::slice::from_ref(&event))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rows = f
            .store
            .audit_events(&AuditFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 200, "{}", f.store.backend());
        let mut verifier = ChainVerifier::new(&key);
        for row in &rows {
            verifier.check(row).unwrap();
        }
        verifier
            .finish(f.store.audit_head().await.unwrap())
            .unwrap();
        let only_task_3 = f
            .store
            .audit_events(&AuditFilter {
                kind: Some("test.event".into()),
                limit: 1000,
                after_seq: Some(190),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(only_task_3.len(), 10);
    }
}

#[tokio::test]
async fn signing_keys_move_through_their_phases_and_a_key_is_stored_once() {
    for f in stores().await {
        let s = f.store.as_ref();
        let row = SigningKeyRow {
            kid: "k1".into(),
            alg: "RS256".into(),
            source: KeySource::Generated,
            fingerprint: "fp1".into(),
            public_jwk: "{}".into(),
            sealed_private_key: Some(vec![1, 2, 3]),
            published_at: 1,
            activates_at: 2,
            activation_recorded: false,
            retires_at: None,
            retired_at: None,
        };
        s.insert_signing_key(&row).await.unwrap();
        assert!(matches!(
            s.insert_signing_key(&SigningKeyRow {
                kid: "k2".into(),
                ..row.clone()
            })
            .await,
            Err(StoreError::Conflict { .. })
        ));
        s.record_key_activation("k1").await.unwrap();
        s.schedule_key_retirement("k1", 50).await.unwrap();
        s.retire_key("k1", 60).await.unwrap();
        let stored = &s.signing_keys().await.unwrap()[0];
        assert!(stored.activation_recorded);
        assert_eq!((stored.retires_at, stored.retired_at), (Some(50), Some(60)));
        assert_eq!(
            stored.sealed_private_key, None,
            "retiring destroys the private half"
        );
    }
}

#[tokio::test]
async fn a_setup_token_works_once_and_only_until_it_expires() {
    for f in stores().await {
        let s = f.store.as_ref();
        s.replace_setup_token("h1", 100).await.unwrap();
        s.replace_setup_token("h2", 100).await.unwrap();
        assert!(
            s.consume_setup_token("h1", 10).await.unwrap().is_none(),
            "only the newest link works"
        );
        assert!(s.consume_setup_token("h2", 10).await.unwrap().is_some());
        assert!(
            s.consume_setup_token("h2", 10).await.unwrap().is_none(),
            "single use"
        );
        s.replace_setup_token("h3", 100).await.unwrap();
        assert!(
            s.consume_setup_token("h3", 100).await.unwrap().is_none(),
            "expired"
        );
    }
}

fn wi_config(org: OrgId, name: &str, cloud: &str, default: bool) -> WiConfigRow {
    WiConfigRow {
        id: keyward_core::WorkloadIdentityConfigId::new_random(),
        org_id: org,
        name: name.into(),
        cloud: cloud.into(),
        settings: r#"{"role_arn":"arn:aws:iam::123456789012:role/r","region":"us-east-1"}"#.into(),
        default_for_cloud: default,
        automations: Vec::new(),
        subject: "organization".into(),
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn workload_identity_configs_keep_one_default_per_cloud_and_their_restriction() {
    for f in stores().await {
        let s = f.store.as_ref();
        let backend = s.backend();
        let (org, _) = org_with_owner(s, "wi").await;
        let (other, _) = org_with_owner(s, "wi-other").await;
        let crew = automation(org, "crew");
        let flow = automation(org, "flow");
        s.create_automation(&crew).await.unwrap();
        s.create_automation(&flow).await.unwrap();

        let mut aws = wi_config(org, "aws-prod", "aws", true);
        aws.automations = vec![crew.id];
        s.create_wi_config(&aws).await.unwrap();
        assert_eq!(
            s.get_wi_config(org, aws.id).await.unwrap(),
            aws,
            "{backend}"
        );
        assert!(matches!(
            s.get_wi_config(other, aws.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            matches!(
                s.create_wi_config(&wi_config(org, "aws-prod", "gcp", false))
                    .await,
                Err(StoreError::Conflict { field: "name" })
            ),
            "{backend}"
        );
        assert!(
            matches!(
                s.create_wi_config(&wi_config(org, "aws-second", "aws", true))
                    .await,
                Err(StoreError::Conflict {
                    field: "default_for_cloud"
                })
            ),
            "{backend}"
        );
        // A non-default of the same cloud, a default of another cloud, a default in another org.
        s.create_wi_config(&wi_config(org, "aws-dev", "aws", false))
            .await
            .unwrap();
        s.create_wi_config(&wi_config(org, "gcp-prod", "gcp", true))
            .await
            .unwrap();
        s.create_wi_config(&wi_config(other, "aws-prod", "aws", true))
            .await
            .unwrap();
        let names: Vec<String> = s
            .list_wi_configs(org)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["aws-dev", "aws-prod", "gcp-prod"]);

        aws.automations = vec![crew.id, flow.id];
        aws.automations.sort();
        aws.default_for_cloud = false;
        aws.updated_at = 2;
        // H3: the finer-subject opt-in is kept; a value outside the two modes never lands.
        aws.subject = "automation".into();
        s.update_wi_config(&aws).await.unwrap();
        let mut bad = wi_config(org, "aws-bad-subject", "aws", false);
        bad.subject = "config".into();
        assert!(s.create_wi_config(&bad).await.is_err(), "{backend}");
        assert_eq!(
            s.find_wi_config_by_name(org, "aws-prod").await.unwrap(),
            Some(aws.clone())
        );
        // Deleting an automation drops it from the restriction.
        s.delete_automation(org, flow.id).await.unwrap();
        assert_eq!(
            s.get_wi_config(org, aws.id).await.unwrap().automations,
            vec![crew.id]
        );

        let connection = LlmConnectionRow {
            id: keyward_core::LlmConnectionId::new_random(),
            org_id: org,
            name: "bedrock".into(),
            provider: "bedrock".into(),
            wi_config_id: Some(aws.id),
            service_account_email: None,
            model: Some("anthropic.claude".into()),
            env: r#"{"AWS_REGION":"us-east-1"}"#.into(),
            automations: vec![crew.id],
            created_at: 1,
            updated_at: 1,
        };
        s.create_llm_connection(&connection).await.unwrap();
        assert_eq!(
            s.get_llm_connection(org, connection.id).await.unwrap(),
            connection
        );
        let deleted = s.delete_wi_config(org, aws.id).await;
        assert!(
            matches!(deleted, Err(StoreError::InUse)),
            "{backend}: a config used by a connection stays: {deleted:?}"
        );
        assert!(matches!(
            s.get_llm_connection(other, connection.id).await,
            Err(StoreError::NotFound)
        ));
        let mut changed = connection.clone();
        changed.wi_config_id = None;
        changed.automations = Vec::new();
        changed.updated_at = 2;
        s.update_llm_connection(&changed).await.unwrap();
        assert_eq!(
            s.list_llm_connections(org).await.unwrap(),
            vec![changed.clone()]
        );
        s.delete_wi_config(org, aws.id).await.unwrap();
        s.delete_llm_connection(org, changed.id).await.unwrap();
        assert_eq!(
            s.find_llm_connection_by_name(org, "bedrock").await.unwrap(),
            None
        );
    }
}

fn provider(org: OrgId, name: &str, kind: &str, default: bool) -> SecretProviderRow {
    SecretProviderRow {
        id: keyward_core::SecretProviderId::new_random(),
        org_id: org,
        name: name.into(),
        provider: kind.into(),
        auth: "static".into(),
        wi_config_id: None,
        settings: r#"{"region":"us-east-1"}"#.into(),
        sealed_static: Some(vec![1, 2, 3]),
        default_for_provider: default,
        created_at: 1,
        updated_at: 1,
    }
}

fn env_var(org: OrgId, key: &str, credential: Option<keyward_core::SecretProviderId>) -> EnvVarRow {
    EnvVarRow {
        id: keyward_core::EnvVarId::new_random(),
        org_id: org,
        key: key.into(),
        source: if credential.is_some() {
            "credential"
        } else {
            "direct"
        }
        .into(),
        provider: None,
        credential_id: credential,
        secret_name: credential.map(|_| "db#password".into()),
        secret: credential.is_some(),
        value: credential.is_none().then(|| "plain".into()),
        sealed_value: None,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn secret_providers_env_vars_assignments_and_resolved_values_stay_in_their_org() {
    for f in stores().await {
        let s = f.store.as_ref();
        let backend = s.backend();
        let (org, _) = org_with_owner(s, "sec").await;
        let (other, _) = org_with_owner(s, "sec-other").await;
        let crew = automation(org, "crew");
        s.create_automation(&crew).await.unwrap();

        let aws = provider(org, "aws-static", "aws_secrets_manager", true);
        s.create_secret_provider(&aws).await.unwrap();
        assert_eq!(
            s.get_secret_provider(org, aws.id).await.unwrap(),
            aws,
            "{backend}"
        );
        assert!(matches!(
            s.get_secret_provider(other, aws.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            matches!(
                s.create_secret_provider(&provider(org, "aws-static", "gcp_secret_manager", false))
                    .await,
                Err(StoreError::Conflict { field: "name" })
            ),
            "{backend}"
        );
        assert!(
            matches!(
                s.create_secret_provider(&provider(org, "aws-second", "aws_secrets_manager", true))
                    .await,
                Err(StoreError::Conflict {
                    field: "default_for_provider"
                })
            ),
            "{backend}"
        );
        s.create_secret_provider(&provider(org, "gcp", "gcp_secret_manager", true))
            .await
            .unwrap();

        let plain = env_var(org, "LOG_LEVEL", None);
        let secret = env_var(org, "DB_PASSWORD", Some(aws.id));
        s.create_env_var(&plain).await.unwrap();
        s.create_env_var(&secret).await.unwrap();
        assert!(
            matches!(
                s.create_env_var(&env_var(org, "LOG_LEVEL", None)).await,
                Err(StoreError::Conflict { field: "key" })
            ),
            "{backend}"
        );
        let deleted = s.delete_secret_provider(org, aws.id).await;
        assert!(
            matches!(deleted, Err(StoreError::InUse)),
            "{backend}: {deleted:?}"
        );

        s.assign_env_vars(org, crew.id, &[secret.id, plain.id])
            .await
            .unwrap();
        let keys: Vec<String> = s
            .automation_env_vars(org, crew.id)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.key)
            .collect();
        assert_eq!(keys, ["DB_PASSWORD", "LOG_LEVEL"]);
        // Another org's variable cannot be assigned, and a failed assignment changes nothing.
        let foreign = env_var(other, "FOREIGN", None);
        s.create_env_var(&foreign).await.unwrap();
        assert!(matches!(
            s.assign_env_vars(org, crew.id, &[plain.id, foreign.id])
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            s.automation_env_vars(org, crew.id).await.unwrap().len(),
            2,
            "{backend}"
        );
        assert!(matches!(
            s.assign_env_vars(other, crew.id, &[foreign.id]).await,
            Err(StoreError::NotFound)
        ));

        let resolved = vec![ResolvedValue {
            env_var_id: secret.id,
            sealed_value: vec![9, 9],
            resolved_at: 5,
        }];
        s.replace_resolved_values(crew.id, &resolved).await.unwrap();
        assert_eq!(s.resolved_values(crew.id).await.unwrap(), resolved);
        s.replace_resolved_values(crew.id, &[]).await.unwrap();
        assert!(s.resolved_values(crew.id).await.unwrap().is_empty());

        let mut changed = secret.clone();
        changed.secret_name = Some("db#user".into());
        changed.updated_at = 2;
        s.update_env_var(&changed).await.unwrap();
        assert_eq!(
            s.find_env_var_by_key(org, "DB_PASSWORD").await.unwrap(),
            Some(changed.clone())
        );
        s.delete_env_var(org, changed.id).await.unwrap();
        s.delete_secret_provider(org, aws.id).await.unwrap();
        assert_eq!(s.list_env_vars(org).await.unwrap(), vec![plain]);
    }
}
