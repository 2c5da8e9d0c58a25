//! One test per row of the plan table in `docs/architecture.md`.

use std::time::Duration;

use serde_json::json;
use sessionward_core::{
    RoleSet, SessionData, SessionHandle, SessionRecord, SessionToken, Timestamp,
};

use super::*;
use crate::config::SessionConfig;
use crate::presented::{Presented, Via};
use crate::session::state::{Intent, Lifetime, Loaded, Pending};

const NOW: Timestamp = Timestamp::from_unix(1_000_000);
/// The `authorized_at` the session hands the plan: the request started 5 s before [`NOW`],
/// less the 1 s clock margin.
const AUTHORIZED: Timestamp = Timestamp::from_unix(1_000_000 - 6);

fn token() -> SessionToken {
    SessionToken::generate().expect("rng")
}

fn fresh() -> Option<(SessionToken, SessionHandle)> {
    Some((token(), SessionHandle::generate().expect("rng")))
}

fn cookie(token: &SessionToken) -> Presented {
    Presented::Token {
        token: token.clone(),
        via: Via::Cookie,
    }
}

/// A live record for `token`, last seen `ago` before [`NOW`], signed in as `user`.
fn record(token: &SessionToken, user: Option<&str>, ago: Duration) -> SessionRecord {
    let config = SessionConfig::default();
    let then = Timestamp::from_unix(NOW.unix() - i64::try_from(ago.as_secs()).expect("secs"));
    let mut r = SessionRecord::new(
        token.key(),
        SessionHandle::generate().expect("rng"),
        then,
        config.idle_timeout,
        config.absolute_timeout,
    );
    r.user = user.map(Into::into);
    if user.is_some() {
        r.authenticated_at = Some(then);
        r.roles = ["user"].into_iter().collect();
    }
    r.data = SessionData::from_json(r#"{"cart":1}"#).expect("json");
    r.version = 7;
    r
}

fn writes() -> DataChanges {
    let mut c = DataChanges::default();
    c.insert("k", json!("v"));
    c
}

fn run(loaded: &Loaded, pending: Pending, presented: &Presented) -> Plan {
    run_with(loaded, pending, presented, &SessionConfig::default())
}

fn run_with(
    loaded: &Loaded,
    pending: Pending,
    presented: &Presented,
    config: &SessionConfig,
) -> Plan {
    let request = Request {
        presented,
        user_agent: Some("agent/1"),
        authorized_at: AUTHORIZED,
    };
    plan(loaded, pending, NOW, config, &request)
}

#[test]
fn row_blind_write_is_one_merging_save_and_a_dead_id_goes_to_a_new_session() {
    let t = token();
    let pending = Pending {
        changes: writes(),
        ..Pending::default()
    };
    let p = run(&Loaded::NotYet, pending, &cookie(&t));
    let Action::BlindSave {
        key,
        changes,
        on_gone,
    } = p.action
    else {
        panic!("expected a blind save");
    };
    assert_eq!(key, t.key());
    assert_eq!(changes.data, writes());
    assert_eq!(changes.last_seen_at, Some(NOW));
    assert_eq!(
        changes.data_limit,
        Some(SessionConfig::default().max_data_bytes)
    );
    assert_eq!(
        on_gone,
        OnGone::CreateAnonymous {
            deliver_cookie: true
        }
    );
    assert!(!p.signed_in);
}

#[test]
fn row_unread_session_with_nothing_to_write_is_left_alone() {
    let t = token();
    let p = run(&Loaded::NotYet, Pending::default(), &cookie(&t));
    assert!(matches!(
        p.action,
        Action::Nothing {
            clear_cookie: false
        }
    ));
}

#[test]
fn row_write_to_a_loaded_session_is_a_versioned_save() {
    let t = token();
    let loaded = Loaded::Live(record(&t, Some("alice"), Duration::from_secs(5)));
    let pending = Pending {
        changes: writes(),
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Save {
        key,
        version,
        changes,
        reissue,
        on_gone,
    } = p.action
    else {
        panic!("expected a save");
    };
    assert_eq!((key, version), (t.key(), 7));
    assert_eq!(changes.data, writes());
    // Activity is recorded at most once per touch interval.
    assert_eq!(changes.last_seen_at, None);
    assert!(reissue.is_none());
    assert_eq!(on_gone, OnGone::Drop { clear_cookie: true });
    assert!(p.signed_in);
}

#[test]
fn row_write_when_a_touch_is_due_records_activity_in_the_save() {
    let t = token();
    let loaded = Loaded::Live(record(&t, None, Duration::from_secs(120)));
    let pending = Pending {
        changes: writes(),
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Save { changes, .. } = p.action else {
        panic!("expected a save");
    };
    assert_eq!(changes.last_seen_at, Some(NOW));
    assert!(!p.signed_in);
}

#[test]
fn row_read_when_a_touch_is_due_is_a_touch() {
    let t = token();
    let loaded = Loaded::Live(record(&t, Some("alice"), Duration::from_secs(120)));
    let p = run(&loaded, Pending::default(), &cookie(&t));
    assert!(matches!(p.action, Action::Touch { key } if key == t.key()));
}

#[test]
fn row_read_within_the_touch_interval_writes_nothing() {
    let t = token();
    let loaded = Loaded::Live(record(&t, Some("alice"), Duration::from_secs(5)));
    let p = run(&loaded, Pending::default(), &cookie(&t));
    assert!(matches!(
        p.action,
        Action::Nothing {
            clear_cookie: false
        }
    ));
    assert!(p.signed_in);
}

#[test]
fn row_lifetime_change_re_issues_a_persistent_cookie() {
    let t = token();
    let old = record(&t, None, Duration::from_secs(5));
    let created = old.created_at;
    let loaded = Loaded::Live(old);
    let config = SessionConfig::builder()
        .persistent_cookies(true)
        .build()
        .expect("valid");
    let pending = Pending {
        lifetime: Some(Lifetime {
            absolute: Duration::from_secs(3600),
            idle: None,
        }),
        ..Pending::default()
    };
    let p = run_with(&loaded, pending, &cookie(&t), &config);
    let Action::Save {
        changes, reissue, ..
    } = p.action
    else {
        panic!("expected a save");
    };
    // Counted from creation for an anonymous session.
    let absolute = created + Duration::from_secs(3600);
    assert_eq!(changes.absolute_expires_at, Some(absolute));
    let reissue = reissue.expect("the cookie is re-issued");
    assert_eq!(reissue.token.expose(), t.expose());
    assert_eq!(reissue.absolute_expires_at, absolute);
    assert!(reissue.cookie);
}

#[test]
fn row_write_without_a_live_session_creates_one_under_a_fresh_id() {
    let t = token();
    let pending = Pending {
        changes: writes(),
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run(&Loaded::Absent, pending, &cookie(&t));
    let Action::Create(new) = p.action else {
        panic!("expected a create");
    };
    assert_ne!(
        new.record.key,
        t.key(),
        "a presented unknown ID is never adopted"
    );
    assert_eq!(new.record.key, new.token.key());
    assert_eq!(new.record.user_agent.as_deref(), Some("agent/1"));
    assert_eq!(new.changes, writes());
    assert!(new.deliver_cookie);
}

#[test]
fn row_dead_cookie_that_was_consulted_is_cleared() {
    let t = token();
    let p = run(&Loaded::Absent, Pending::default(), &cookie(&t));
    assert!(matches!(p.action, Action::Nothing { clear_cookie: true }));
    let bearer = Presented::Token {
        token: t,
        via: Via::Bearer,
    };
    let p = run(&Loaded::Absent, Pending::default(), &bearer);
    assert!(matches!(
        p.action,
        Action::Nothing {
            clear_cookie: false
        }
    ));
}

#[test]
fn row_sign_out_deletes_every_presented_id_and_clears_the_cookie() {
    let (a, b) = (token(), token());
    let presented = Presented::Ambiguous {
        via: Via::Cookie,
        candidates: vec![a.clone(), b.clone()],
    };
    let pending = Pending {
        intent: Intent::SignOut,
        ..Pending::default()
    };
    let p = run(&Loaded::Absent, pending, &presented);
    let Action::Logout { keys, clear_cookie } = p.action else {
        panic!("expected a logout");
    };
    assert_eq!(keys, vec![a.key(), b.key()]);
    assert!(clear_cookie);
}

#[test]
fn row_sign_in_on_the_own_session_rotates_it_and_rebuilds_on_conflict() {
    let t = token();
    let old = record(&t, Some("alice"), Duration::from_secs(5));
    let created = old.created_at;
    let loaded = Loaded::Live(old);
    let pending = Pending {
        intent: Intent::SignIn {
            user: "alice".into(),
            roles: ["admin"].into_iter().collect(),
            discard_old: false,
        },
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(
        r.from,
        RotateFrom::Record {
            key: t.key(),
            version: 7
        }
    );
    assert_eq!(
        (r.reason, r.on_conflict, r.on_gone),
        (Reason::Login, OnConflict::Rebuild, OnGone::CreateNew)
    );
    let rec = &r.new.record;
    assert_eq!(
        rec.user.as_ref().map(sessionward_core::UserId::as_str),
        Some("alice")
    );
    assert!(rec.roles.contains("admin"));
    assert_eq!(rec.authenticated_at, Some(NOW));
    assert_eq!(rec.created_at, created);
    let data = rec.data.to_map().expect("json");
    assert_eq!(data.get("cart"), Some(&json!(1)));
    assert_eq!(
        rec.absolute_expires_at,
        NOW + SessionConfig::default().absolute_timeout
    );
}

#[test]
fn row_sign_in_over_another_users_session_deletes_it_and_carries_nothing() {
    let t = token();
    let loaded = Loaded::Live(record(&t, Some("mallory"), Duration::from_secs(5)));
    let pending = Pending {
        intent: Intent::SignIn {
            user: "alice".into(),
            roles: RoleSet::empty(),
            discard_old: true,
        },
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(r.from, RotateFrom::Delete(t.key()));
    assert!(r.new.record.data.is_empty());
    assert_eq!(r.new.record.created_at, NOW);
}

#[test]
fn row_sign_in_without_a_session_creates_one_and_a_bearer_client_gets_no_cookie() {
    let t = token();
    let bearer = Presented::Token {
        token: t,
        via: Via::Bearer,
    };
    let pending = Pending {
        intent: Intent::SignIn {
            user: "alice".into(),
            roles: RoleSet::empty(),
            discard_old: false,
        },
        new_token: fresh(),
        lifetime: Some(Lifetime {
            absolute: Duration::from_secs(30 * 24 * 3600),
            idle: Some(Duration::from_secs(7 * 24 * 3600)),
        }),
        ..Pending::default()
    };
    let p = run(&Loaded::Absent, pending, &bearer);
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(r.from, RotateFrom::Nothing);
    assert!(!r.new.deliver_cookie);
    // A sign-in may set any lifetime.
    let rec = &r.new.record;
    assert_eq!(
        rec.absolute_expires_at,
        NOW + Duration::from_secs(30 * 24 * 3600)
    );
    assert_eq!(rec.idle_timeout, Duration::from_secs(7 * 24 * 3600));
}

#[test]
fn row_privilege_change_rotates_the_same_session_and_refuses_on_conflict() {
    let t = token();
    let old = record(&t, Some("alice"), Duration::from_secs(5));
    let (handle, expiry) = (old.handle, old.absolute_expires_at);
    let loaded = Loaded::Live(old);
    let pending = Pending {
        intent: Intent::PrivilegeChange(["admin"].into_iter().collect()),
        new_token: fresh(),
        token_taken: true,
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(
        (r.reason, r.on_conflict, r.on_gone),
        (
            Reason::PrivilegeChange,
            OnConflict::Refuse,
            OnGone::Drop { clear_cookie: true }
        )
    );
    assert_eq!(r.new.record.handle, handle);
    assert_eq!(r.new.record.absolute_expires_at, expiry);
    assert!(r.new.record.roles.contains("admin"));
    // The handler took the token: no cookie.
    assert!(!r.new.deliver_cookie);
}

#[test]
fn row_privilege_change_only_shortens_a_signed_in_lifetime() {
    let t = token();
    let old = record(&t, Some("alice"), Duration::from_secs(5));
    let expiry = old.absolute_expires_at;
    let loaded = Loaded::Live(old);
    let pending = Pending {
        intent: Intent::PrivilegeChange(RoleSet::empty()),
        new_token: fresh(),
        lifetime: Some(Lifetime {
            absolute: Duration::from_secs(400 * 24 * 3600),
            idle: None,
        }),
        ..Pending::default()
    };
    let p = run(&loaded, pending, &cookie(&t));
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(r.new.record.absolute_expires_at, expiry);
}

#[test]
fn row_privilege_change_without_a_live_session_writes_nothing() {
    let t = token();
    let pending = Pending {
        intent: Intent::PrivilegeChange(RoleSet::empty()),
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run(&Loaded::Absent, pending, &cookie(&t));
    assert!(matches!(p.action, Action::Nothing { clear_cookie: true }));
}

/// SEC-16: a sign-in and a privilege change date their authorization from the request's start
/// (less the margin), not from when the response goes out; both carry `persistent`.
#[test]
fn sign_in_and_privilege_change_date_their_authorization_from_the_request() {
    let t = token();
    let mut old = record(&t, Some("alice"), Duration::from_secs(5));
    old.persistent = Some(true);
    old.authorized_at = Timestamp::from_unix(10);
    let loaded = Loaded::Live(old);
    for intent in [
        Intent::SignIn {
            user: "alice".into(),
            roles: ["admin"].into_iter().collect(),
            discard_old: false,
        },
        Intent::PrivilegeChange(["user"].into_iter().collect()),
    ] {
        let pending = Pending {
            intent,
            new_token: fresh(),
            ..Pending::default()
        };
        let p = run(&loaded, pending, &cookie(&t));
        let Action::Rotate(r) = p.action else {
            panic!("expected a rotation");
        };
        assert_eq!(r.new.record.authorized_at, AUTHORIZED);
        assert_eq!(r.new.record.persistent, Some(true));
    }
}

/// Anonymous sessions get the anonymous idle timeout; a sign-in gives the signed-in one.
#[test]
fn anonymous_sessions_get_their_own_idle_timeout() {
    let config = SessionConfig::builder()
        .anonymous_idle_timeout(Duration::from_secs(300))
        .build()
        .expect("config");
    let t = token();
    let pending = Pending {
        changes: writes(),
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run_with(&Loaded::Absent, pending, &Presented::Nothing, &config);
    let Action::Create(new) = p.action else {
        panic!("expected a create");
    };
    assert_eq!(new.record.idle_timeout, Duration::from_secs(300));
    assert_eq!(new.record.persistent, None);
    let anon = record(&t, None, Duration::from_secs(5));
    let pending = Pending {
        intent: Intent::SignIn {
            user: "alice".into(),
            roles: RoleSet::empty(),
            discard_old: false,
        },
        new_token: fresh(),
        ..Pending::default()
    };
    let p = run_with(&Loaded::Live(anon), pending, &cookie(&t), &config);
    let Action::Rotate(r) = p.action else {
        panic!("expected a rotation");
    };
    assert_eq!(r.new.record.idle_timeout, config.idle_timeout);
}
