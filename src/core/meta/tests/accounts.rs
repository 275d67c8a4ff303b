//! Cases for users, access keys, bucket grants and sessions: creating,
//! disabling and deleting them, and the lookups access checks rely on.

use super::{ALICE, BOB, add_bucket, add_user};
use crate::core::meta::{MetaError, MetaStore, Mutation, UserRecord};
use crate::model::{AccountRecord, GrantLevel, KeyRecord, Secret};

on_every_engine!(
    users_and_keys,
    grants_share_buckets,
    ensure_user_keeps_one_key,
    sessions_expire_and_revoke,
);

fn key(access_key: &str, user_id: &str, created_ms: i64) -> KeyRecord {
    KeyRecord {
        access_key: access_key.into(),
        user_id: user_id.into(),
        created_ms,
        read_only: false,
        buckets: None,
        for_share_links: false,
    }
}

fn create_key(key: KeyRecord, secret: &str) -> Mutation {
    Mutation::CreateKey {
        key,
        secret: secret.into(),
    }
}

async fn users_and_keys(store: MetaStore) {
    let alice = AccountRecord {
        id: ALICE.into(),
        name: "alice".into(),
        role: crate::model::Role::Admin,
        created_ms: 3,
        disabled_ms: None,
        password_hash: Some(Secret::new("hash-1")),
    };
    store
        .apply(Mutation::CreateUser {
            account: alice.clone(),
        })
        .await
        .unwrap();
    assert_refused!(
        store
            .apply(Mutation::CreateUser {
                account: AccountRecord {
                    id: "u-other".into(),
                    ..alice.clone()
                },
            })
            .await,
        MetaError::UserExists
    );
    add_user(&store, BOB).await;
    assert_eq!(store.count_users().await.unwrap(), 2);
    let names: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let found = store
        .account_by_name("alice")
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(
        (found.id.as_str(), found.role.as_str(), found.created_ms),
        (ALICE, "admin", 3)
    );
    assert_eq!(
        found.password_hash.as_ref().map(Secret::expose),
        Some("hash-1")
    );
    assert_eq!(found.disabled_ms, None);

    store
        .apply(create_key(key("AK-1", ALICE, 10), "secret-1"))
        .await
        .unwrap();
    let limited = KeyRecord {
        read_only: true,
        buckets: Some(vec!["b".into()]),
        for_share_links: true,
        ..key("AK-2", ALICE, 20)
    };
    store.apply(create_key(limited, "secret-2")).await.unwrap();
    assert_refused!(
        store
            .apply(create_key(key("AK-3", "u-nobody", 30), "s"))
            .await,
        MetaError::NoSuchUser
    );
    let grant = store.key_grant("AK-1").await.unwrap().expect("AK-1");
    assert_eq!(grant.secret.expose(), "secret-1");
    assert_eq!(grant.user.name, "alice");
    assert!(!grant.key.read_only && grant.key.buckets.is_none());
    let grant = store.key_grant("AK-2").await.unwrap().expect("AK-2");
    assert!(grant.key.read_only && grant.key.for_share_links);
    assert_eq!(grant.key.buckets, Some(vec!["b".to_owned()]));
    assert!(store.key_grant("AK-3").await.unwrap().is_none());
    let keys: Vec<String> = store
        .keys_of(ALICE)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.access_key)
        .collect();
    assert_eq!(keys, ["AK-1", "AK-2"]);

    let disable = |disabled_ms| Mutation::SetUserDisabled {
        user_id: ALICE.into(),
        disabled_ms,
    };
    store.apply(disable(Some(50))).await.unwrap();
    let grant = store.key_grant("AK-1").await.unwrap().expect("AK-1");
    assert_eq!(
        grant.user.disabled_ms,
        Some(50),
        "a key shows its user disabled"
    );
    store.apply(disable(None)).await.unwrap();
    let found = store
        .account_by_name("alice")
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(found.disabled_ms, None);
    assert_refused!(
        store
            .apply(Mutation::SetUserDisabled {
                user_id: "u-nobody".into(),
                disabled_ms: Some(1),
            })
            .await,
        MetaError::NoSuchUser
    );
    store
        .apply(Mutation::SetPassword {
            user_id: ALICE.into(),
            password_hash: "hash-2".into(),
        })
        .await
        .unwrap();
    let found = store
        .account_by_name("alice")
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(
        found.password_hash.as_ref().map(Secret::expose),
        Some("hash-2")
    );

    let delete_key = |user_id: &str| Mutation::DeleteKey {
        access_key: "AK-1".into(),
        user_id: user_id.into(),
    };
    assert_refused!(store.apply(delete_key(BOB)).await, MetaError::NoSuchKey);
    assert!(store.key_grant("AK-1").await.unwrap().is_some());
    store.apply(delete_key(ALICE)).await.unwrap();
    assert!(store.key_grant("AK-1").await.unwrap().is_none());

    add_bucket(&store, "b", ALICE).await;
    let delete_user = |user_id: &str| Mutation::DeleteUser {
        user_id: user_id.into(),
    };
    assert_refused!(
        store.apply(delete_user(ALICE)).await,
        MetaError::UserOwnsBuckets
    );
    store
        .apply(create_key(key("AK-B", BOB, 40), "secret-b"))
        .await
        .unwrap();
    store.apply(delete_user(BOB)).await.unwrap();
    assert!(store.account_by_name("bob").await.unwrap().is_none());
    assert!(
        store.key_grant("AK-B").await.unwrap().is_none(),
        "keys go too"
    );
    assert_refused!(store.apply(delete_user(BOB)).await, MetaError::NoSuchUser);
}

async fn grants_share_buckets(store: MetaStore) {
    add_user(&store, ALICE).await;
    add_user(&store, BOB).await;
    add_bucket(&store, "b", ALICE).await;
    let set = |bucket: &str, user_id: &str, level| Mutation::SetGrant {
        bucket: bucket.into(),
        user_id: user_id.into(),
        level,
    };
    store
        .apply(set("b", BOB, Some(GrantLevel::Read)))
        .await
        .unwrap();
    assert_eq!(store.grant("b", BOB).await.unwrap(), Some(GrantLevel::Read));
    assert_eq!(store.grant("b", ALICE).await.unwrap(), None);
    store
        .apply(set("b", BOB, Some(GrantLevel::ReadWrite)))
        .await
        .unwrap();
    assert_eq!(
        store.grants_on("b").await.unwrap(),
        [("bob".to_owned(), GrantLevel::ReadWrite)]
    );
    assert_eq!(
        store.grants_of(BOB).await.unwrap(),
        [("b".to_owned(), GrantLevel::ReadWrite)]
    );
    assert_refused!(
        store
            .apply(set("missing", BOB, Some(GrantLevel::Read)))
            .await,
        MetaError::NoSuchBucket
    );
    assert_refused!(
        store
            .apply(set("b", "u-nobody", Some(GrantLevel::Read)))
            .await,
        MetaError::NoSuchUser
    );
    store.apply(set("b", BOB, None)).await.unwrap();
    assert_eq!(store.grant("b", BOB).await.unwrap(), None);
    assert!(store.grants_on("b").await.unwrap().is_empty());

    // A deleted user's grants go with them.
    store
        .apply(set("b", BOB, Some(GrantLevel::Read)))
        .await
        .unwrap();
    store
        .apply(Mutation::DeleteUser {
            user_id: BOB.into(),
        })
        .await
        .unwrap();
    assert!(store.grants_on("b").await.unwrap().is_empty());

    store
        .apply(Mutation::SetPublicRead {
            bucket: "b".into(),
            public_read: true,
        })
        .await
        .unwrap();
    assert!(store.bucket("b").await.unwrap().expect("b").public_read);
    assert_refused!(
        store
            .apply(Mutation::SetPublicRead {
                bucket: "missing".into(),
                public_read: true,
            })
            .await,
        MetaError::NoSuchBucket
    );
}

async fn ensure_user_keeps_one_key(store: MetaStore) {
    let ensure = |access_key: &str, secret: &str, role: &str| Mutation::EnsureUser {
        user: UserRecord {
            id: "u-root".into(),
            name: "root".into(),
            role: role.parse().expect("a role"),
        },
        access_key: access_key.into(),
        secret: secret.into(),
        password_hash: "hash".into(),
        now_ms: 1,
    };
    store.apply(ensure("RK-1", "s-1", "admin")).await.unwrap();
    store
        .apply(Mutation::SetUserDisabled {
            user_id: "u-root".into(),
            disabled_ms: Some(5),
        })
        .await
        .unwrap();
    store.apply(ensure("RK-2", "s-2", "admin")).await.unwrap();
    assert!(
        store.key_grant("RK-1").await.unwrap().is_none(),
        "old key dropped"
    );
    let grant = store.key_grant("RK-2").await.unwrap().expect("RK-2");
    assert_eq!(grant.secret.expose(), "s-2");
    assert_eq!(grant.user.disabled_ms, None, "ensuring re-enables");
    store.apply(ensure("RK-2", "s-3", "admin")).await.unwrap();
    let grant = store.key_grant("RK-2").await.unwrap().expect("RK-2");
    assert_eq!(grant.secret.expose(), "s-3");
    assert_eq!(store.count_users().await.unwrap(), 1);
    // Another id asking for a name already held is refused, not merged.
    let mut other = ensure("OK-1", "s-9", "user");
    if let Mutation::EnsureUser { user, .. } = &mut other {
        user.id = "u-other".into();
    }
    assert!(matches!(
        store.apply(other).await.unwrap_err(),
        MetaError::UserExists
    ));
    assert!(store.key_grant("OK-1").await.unwrap().is_none());
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn sessions_expire_and_revoke(store: MetaStore) {
    add_user(&store, ALICE).await;
    for token in ["t-1", "t-2", "t-3"] {
        store
            .apply(Mutation::CreateSession {
                token_hash: token.into(),
                user_id: ALICE.into(),
                created_ms: 100,
                expires_ms: 1_000,
            })
            .await
            .unwrap();
    }
    let account = store.session_account("t-1", 500).await.unwrap();
    assert_eq!(account.expect("live session").id, ALICE);
    assert!(store.session_account("t-1", 1_000).await.unwrap().is_none());
    assert!(store.session_account("t-9", 500).await.unwrap().is_none());
    let revoke = |only: Option<&str>, keep: Option<&str>| Mutation::RevokeSessions {
        user_id: ALICE.into(),
        only: only.map(str::to_owned),
        keep: keep.map(str::to_owned),
        now_ms: 200,
    };
    store.apply(revoke(Some("t-1"), None)).await.unwrap();
    assert!(store.session_account("t-1", 500).await.unwrap().is_none());
    assert!(store.session_account("t-2", 500).await.unwrap().is_some());
    store.apply(revoke(None, Some("t-3"))).await.unwrap();
    assert!(store.session_account("t-2", 500).await.unwrap().is_none());
    assert!(store.session_account("t-3", 500).await.unwrap().is_some());
    assert_refused!(
        store
            .apply(Mutation::CreateSession {
                token_hash: "t-4".into(),
                user_id: "u-nobody".into(),
                created_ms: 1,
                expires_ms: 2,
            })
            .await,
        MetaError::NoSuchUser
    );
}
