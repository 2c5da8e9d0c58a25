//! The cluster-only Lua scripts, each touching only its declared keys, all in one slot.

use super::*;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// The cluster-only scripts. Each touches only its declared `KEYS`, all in one slot.
pub(crate) struct ClusterScripts {
    pub(super) user_add: Script,
    pub(super) drop_record: Script,
    pub(super) take_old: Script,
    pub(super) bump: Script,
    pub(super) read_user: Script,
    pub(super) rec_delete_for_user: Script,
    pub(super) rec_stamp: Script,
    pub(super) rec_set_roles: Script,
    pub(super) rec_delete_handle: Script,
    pub(super) expire_one: Script,
}

pub(super) static CLUSTER: LazyLock<ClusterScripts> = LazyLock::new(|| ClusterScripts {
    user_add: script(USER_ADD),
    drop_record: script(DROP_RECORD),
    take_old: script(TAKE_OLD),
    bump: script(BUMP),
    read_user: script(READ_USER),
    rec_delete_for_user: script(REC_DELETE_FOR_USER),
    rec_stamp: script(REC_STAMP),
    rec_set_roles: script(REC_SET_ROLES),
    rec_delete_handle: script(REC_DELETE_HANDLE),
    expire_one: script(EXPIRE_ONE),
});

/// User slot. KEYS: user index, change time. ARGV: key hex, authorized_at.
/// Returns 1 (added to the index), or 0 if the change time is later than `authorized_at`
/// (nothing written).
const USER_ADD: &str = r"
if stale(KEYS[2], ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: key hex, uk or ''.
/// Deletes the record and its expiry entry; returns 1 if the record existed.
const DROP_RECORD: &str = r"
redis.call('ZREM', KEYS[2], member(ARGV[1], ARGV[2]))
return redis.call('DEL', KEYS[1])
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: now, key hex, expected version or '',
/// '1' to delete the live record (take it), '0' to only check it.
/// Returns {1, uk or ''} live (and deleted when taking), {0, uk or ''} gone (deleted if it had
/// expired), {2, version} live at another version (nothing written).
const TAKE_OLD: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x', 'uk', 'v')
if not f[1] then return {0, ''} end
local uk = f[4] or ''
local function drop()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], f[4]))
end
if tonumber(ARGV[1]) >= expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3])) then
  drop()
  return {0, uk}
end
if ARGV[3] ~= '' and f[5] ~= ARGV[3] then return {2, f[5]} end
if ARGV[4] == '1' then drop() end
return {1, uk}
";

/// User slot. KEYS: user index, change time. ARGV: now, how long to keep the change time (s).
/// Records the change time (the later of the stored one and `now`); returns it, then the
/// index's members.
const BUMP: &str = r"
local out = {bump_epoch(KEYS[2], ARGV[1], ARGV[2])}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do out[#out + 1] = m end
return out
";

/// User slot. KEYS: user index, change time. Returns the change time or '', then the members.
const READ_USER: &str = r"
local out = {redis.call('GET', KEYS[2]) or ''}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do out[#out + 1] = m end
return out
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk.
/// Returns 1 (the user's record, deleted), 0 (no record: its expiry entry dropped), 2 (a
/// record of someone else, untouched).
const REC_DELETE_FOR_USER: &str = r"
local u = redis.call('HGET', KEYS[1], 'u')
if u == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 1
end
if not u then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
return 2
";

/// Record slot. KEYS: record. ARGV: user id, change time.
/// Sets `z` to the change time if the record is the user's and older; returns 1 if it is.
const REC_STAMP: &str = r"
if redis.call('HGET', KEYS[1], 'u') ~= ARGV[1] then return 0 end
stamp(KEYS[1], tonumber(ARGV[2]))
return 1
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk, roles JSON,
/// change time. Returns 1 (the user's record: new roles, `z`, version bumped), 0 (no record:
/// its expiry entry dropped), 2 (someone else's).
const REC_SET_ROLES: &str = r"
local u = redis.call('HGET', KEYS[1], 'u')
if u == ARGV[1] then
  redis.call('HSET', KEYS[1], 'r', ARGV[4])
  stamp(KEYS[1], tonumber(ARGV[5]))
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  return 1
end
if not u then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
return 2
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk, handle.
/// Returns 1 (the user's session with that handle, deleted), 0 (no record), 2 (another one).
const REC_DELETE_HANDLE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'u', 'h')
if not f[1] then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
if f[1] == ARGV[1] and f[2] == ARGV[4] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 1
end
return 2
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: now, expiry member.
/// Returns 1 (expired at `now`: deleted), 0 (already gone: entry dropped), 2 (its expiry moved
/// later: filed again).
const EXPIRE_ONE: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x')
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
local e = expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3]))
if e <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
redis.call('ZADD', KEYS[2], score(e), ARGV[2])
return 2
";
