//! The cases, by group. Each takes a fresh store and returns `Err(Failure)` with what it
//! expected.

use std::sync::Arc;

use sessionward_core::{SessionKey, SessionRecord, SessionStore, Timestamp};

use crate::{Case, CaseFuture, Failure};

type Store = Arc<dyn SessionStore>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure::new(format!("{} (line {})", format!($($msg)+), line!())));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(Failure::new(format!(
                "expected `{}` == `{}`: {:?} != {:?} (line {})",
                stringify!($left),
                stringify!($right),
                l,
                r,
                line!()
            )));
        }
    }};
}

mod epochs;
mod expiry;
mod per_user;
mod races;
mod records;
mod rotation;
mod saves;

/// What every group file uses.
mod prelude {
    pub(super) use std::time::Duration;

    pub(super) use serde_json::json;
    pub(super) use sessionward_core::{
        ChangeSet, RoleSet, RotateOutcome, SaveOutcome, SessionData, StoreError,
    };

    pub(super) use super::{Store, live};
    pub(super) use crate::fixtures::{
        IDLE, anonymous, data_change, handle, new_key, now, signed_in, unique_user,
    };
    pub(super) use crate::{CaseResult, Failure};
}

macro_rules! cases {
    ($($group:ident :: $name:ident),+ $(,)?) => {
        /// Every case of the suite, by name.
        pub static CASES: &[Case] = &[
            $(Case {
                name: stringify!($name),
                run: |store| -> CaseFuture { Box::pin($group::$name(store)) },
            }),+
        ];
    };
}

cases![
    records::create_then_load_round_trips_every_field,
    records::create_collision_is_an_error_and_keeps_the_original,
    records::load_of_unknown_key_is_none,
    records::load_hides_idle_expired_record,
    records::load_hides_absolute_expired_record,
    records::touch_extends_idle_expiry,
    records::touch_never_extends_absolute_expiry,
    records::touch_of_unknown_or_expired_is_false,
    records::touch_never_moves_last_seen_back,
    saves::save_sets_and_removes_keys,
    saves::save_increments_version,
    saves::save_merges_data_keys_from_a_stale_version,
    saves::save_structural_change_with_stale_version_conflicts,
    saves::save_structural_change_with_current_version,
    saves::blind_save_applies_whatever_the_version,
    saves::save_lifetime_override,
    saves::save_after_delete_is_gone_and_recreates_nothing,
    saves::save_after_expiry_is_gone,
    saves::save_removes_and_sets_in_one_change,
    races::concurrent_saves_of_distinct_keys_all_survive,
    races::save_racing_delete_never_resurrects,
    rotation::rotate_moves_the_record_to_the_new_key,
    rotation::rotate_of_gone_record_creates_nothing,
    rotation::rotate_of_expired_record_creates_nothing,
    races::concurrent_rotations_leave_exactly_one_successor,
    rotation::rotate_onto_existing_key_is_a_collision,
    rotation::rotate_anonymous_to_user_indexes_the_user,
    records::delete_existing_and_missing,
    per_user::delete_by_user_deletes_all,
    per_user::delete_by_user_keeps_the_excepted_key,
    per_user::delete_by_user_leaves_other_users_alone,
    per_user::delete_by_user_reaches_rotated_sessions,
    per_user::list_by_user_lists_live_sessions_only,
    per_user::list_by_user_of_unknown_user_is_empty,
    per_user::list_by_user_after_delete_omits_it,
    per_user::set_roles_for_user_changes_every_session,
    per_user::set_roles_for_user_leaves_other_users_alone,
    per_user::delete_by_handle_ends_own_session,
    per_user::delete_by_handle_refuses_another_users_handle,
    per_user::delete_by_handle_unknown_is_false,
    expiry::delete_expired_counts_what_it_deletes,
    expiry::delete_expired_respects_the_limit,
    expiry::delete_expired_keeps_touched_sessions,
    rotation::rotate_with_a_stale_version_conflicts_and_changes_nothing,
    rotation::rotate_with_the_current_version_rotates,
    saves::save_over_the_data_limit_is_refused_and_changes_nothing,
    races::concurrent_saves_cannot_grow_the_data_past_the_limit,
    races::a_versioned_rotation_and_a_racing_save_never_both_succeed,
    epochs::a_sign_in_decided_before_a_demotion_is_refused,
    epochs::a_sign_in_decided_before_delete_by_user_is_refused,
    epochs::set_roles_keeps_existing_sessions_current,
    epochs::a_stale_privilege_rotation_is_refused_and_keeps_the_old_session,
    epochs::the_change_time_never_moves_back,
    epochs::epochs_are_per_user_and_ignore_anonymous_sessions,
    epochs::sign_ins_racing_a_demotion_never_keep_the_old_roles,
    epochs::sign_ins_racing_delete_by_user_never_survive,
];

/// The live record under `key` at `at`, or a failure.
async fn live(store: &Store, key: &SessionKey, at: Timestamp) -> Result<SessionRecord, Failure> {
    store
        .load(key, at)
        .await?
        .ok_or_else(|| Failure::new("expected a live record, found none"))
}
