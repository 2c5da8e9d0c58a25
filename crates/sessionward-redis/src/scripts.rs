//! The Lua scripts: every operation that writes is one script, so it is atomic.
//!
//! Conventions shared by every script in single-node mode (see `docs/stores.md (RedisStore
//! section)`; cluster mode reuses `create` (without the user's keys), `save` and `touch`, with
//! every key declared, and has scripts of its own in `cluster/scripts.rs`):
//!
//! - `P` (passed as an argument) is the key prefix `{namespace}:`; every key starts with it, so
//!   every key of one store hashes to one Redis Cluster slot and scripts may reach the keys they
//!   derive from a record (the owner's index) without a `CROSSSLOT` error.
//! - A record is the hash `P s:<key hex>`: meta fields `h u uk r c s a i x ua v z p`, the data size
//!   `ds` (see `SAVE`) and one field `d:<name>` per data key, holding the value's JSON text.
//! - The user index is the set `P u:<uk>` of key hexes, `uk` being a digest of the user id.
//! - The user's authorization change time is the string `P e:<uk>` (unix seconds of the
//!   caller's clock), written by the per-user scripts and kept (TTL) at least 24 h after the
//!   change; a signed-in record whose `z` (authorized at) is earlier is refused by create and
//!   rotate.
//! - The expiry index is the sorted set `P x`: member `<key hex>` (anonymous) or
//!   `<key hex>:<uk>`, score = the record's expiry in unix seconds of the caller's clock.
//! - Expiry is `min(s + i, x)` checked against the `now` the caller passes, never Redis' clock.

use std::sync::LazyLock;

use redis::Script;

// The Lua helpers, one macro each, so that the full prelude (for the cluster scripts) and the
// per-script selection below share one text.
macro_rules! lua_expiry {
    () => {
        r"
local function expiry(s, i, x)
  local e = s + i
  if x < e then e = x end
  return e
end
"
    };
}

macro_rules! lua_ttl {
    () => {
        r"
local function ttl(e, now, slack)
  local t = e - now
  if t < 0 then t = 0 end
  t = t + slack
  if t < 1 then t = 1 end
  if t > 1000000000 then t = 1000000000 end
  return string.format('%d', t)
end
"
    };
}

macro_rules! lua_score {
    () => {
        r"
local function score(e)
  return string.format('%.17g', e)
end
"
    };
}

macro_rules! lua_member {
    () => {
        r"
local function member(hex, uk)
  if uk and uk ~= '' then return hex .. ':' .. uk end
  return hex
end
"
    };
}

macro_rules! lua_hset_from {
    () => {
        r"
local function hset_from(key, args, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 199, last)
    redis.call('HSET', key, unpack(args, i, j))
    i = j + 1
  end
end
"
    };
}

macro_rules! lua_json_key_len {
    () => {
        r"
local function json_key_len(k)
  if not string.find(k, '[%z\1-\31\34\92]') then return #k + 2 end
  local _, quotes = string.gsub(k, '[\34\92]', '')
  local _, controls = string.gsub(k, '[%z\1-\31]', '')
  local _, short = string.gsub(k, '[\8\9\10\12\13]', '')
  return #k + 2 + quotes + 5 * controls - 4 * short
end
"
    };
}

macro_rules! lua_bump_epoch {
    () => {
        r"
local function bump_epoch(key, now, keep)
  local changed = tonumber(now)
  local stored = tonumber(redis.call('GET', key) or '')
  if stored and stored > changed then changed = stored end
  local t = changed - tonumber(now)
  if t < 0 then t = 0 end
  t = t + tonumber(keep)
  local left = redis.call('TTL', key)
  if left > t then t = left end
  redis.call('SET', key, string.format('%d', changed), 'EX', string.format('%d', t))
  return changed
end
"
    };
}

macro_rules! lua_stale {
    () => {
        r"
local function stale(epoch_key, authorized_at)
  local e = tonumber(redis.call('GET', epoch_key) or '')
  return e ~= nil and tonumber(authorized_at) < e
end
"
    };
}

macro_rules! lua_stamp {
    () => {
        r"
local function stamp(rec, changed)
  local z = tonumber(redis.call('HGET', rec, 'z') or redis.call('HGET', rec, 'c') or '0')
  if not z or z < changed then redis.call('HSET', rec, 'z', string.format('%d', changed)) end
end
"
    };
}

macro_rules! lua_hdel_from {
    () => {
        r"
local function hdel_from(key, args, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 199, last)
    redis.call('HDEL', key, unpack(args, i, j))
    i = j + 1
  end
end
"
    };
}

/// Every helper, prepended to the cluster scripts (`cluster/scripts.rs`).
pub(crate) const PRELUDE: &str = concat!(
    lua_expiry!(),
    lua_ttl!(),
    lua_score!(),
    lua_member!(),
    lua_hset_from!(),
    lua_json_key_len!(),
    lua_bump_epoch!(),
    lua_stale!(),
    lua_stamp!(),
    lua_hdel_from!()
);

/// The helpers by name: a single-node script gets only those it calls (a `local function`
/// costs Redis a closure on every call of the script).
const HELPERS: [(&str, &str); 10] = [
    ("expiry", lua_expiry!()),
    ("ttl", lua_ttl!()),
    ("score", lua_score!()),
    ("member", lua_member!()),
    ("hset_from", lua_hset_from!()),
    ("json_key_len", lua_json_key_len!()),
    ("bump_epoch", lua_bump_epoch!()),
    ("stale", lua_stale!()),
    ("stamp", lua_stamp!()),
    ("hdel_from", lua_hdel_from!()),
];

/// One script, with the helpers its body calls (none of them calls another).
fn script(body: &str) -> Script {
    let mut text = String::new();
    for (name, code) in HELPERS {
        if body.contains(&format!("{name}(")) {
            text.push_str(code);
        }
    }
    text.push_str(body);
    Script::new(&text)
}

/// Every script, compiled (hashed) once.
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) save: Script,
    pub(crate) touch: Script,
    pub(crate) rotate: Script,
    pub(crate) delete: Script,
    pub(crate) delete_by_user: Script,
    pub(crate) list_by_user: Script,
    pub(crate) set_roles_for_user: Script,
    pub(crate) delete_by_handle: Script,
    pub(crate) delete_expired: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create: script(CREATE),
    save: script(SAVE),
    touch: script(TOUCH),
    rotate: script(ROTATE),
    delete: script(DELETE),
    delete_by_user: script(DELETE_BY_USER),
    list_by_user: script(LIST_BY_USER),
    set_roles_for_user: script(SET_ROLES_FOR_USER),
    delete_by_handle: script(DELETE_BY_HANDLE),
    delete_expired: script(DELETE_EXPIRED),
});

/// KEYS: record, expiry index, [user index, user's change time].
/// ARGV: key hex, uk or '', expires_at, ttl, authorized_at, field, value, ...
/// Returns 1, 0 if the key exists, or -2 if the record is signed in and its authorization
/// predates its user's change time (nothing written either way).
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[4] and stale(KEYS[4], ARGV[5]) then return -2 end
hset_from(KEYS[1], ARGV, 6, #ARGV)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], member(ARGV[1], ARGV[2]))
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[1]) end
return 1
";

/// KEYS: record, expiry index.
/// ARGV: now, expected version or '', check the version '1'|'0', clear '1'|'0',
/// last_seen or '', absolute expiry or '', idle secs or '', ttl slack, key hex,
/// data size limit or '', number of set keys N, number of removed keys M,
/// N x (field, value), N x quoted key length, M x field, M x quoted key length.
/// Returns {0} gone, {1, version} saved, {2, version} conflict, {3, size} data too large
/// (nothing written).
///
/// The size of the data is that of the JSON object text the record loads as (what
/// `codec::decode` builds and `serde_json` would write: `{"name":value,...}`, no spaces). The
/// record keeps it in the field `ds` = `<version> <sum> <count>` (`codec::size_field`): the sum
/// over data keys of quoted-name length + 1 + value length, and their count, valid while
/// `<version>` is the record's `v` (a writer that does not keep `ds`, such as an older
/// release, bumps `v` and so invalidates it). A save measures only the keys it sets or removes
/// (`HSTRLEN`, lengths of quoted names from the caller); with no valid `ds` and a limit to
/// check it reads the data once (`HGETALL`) and stores the result.
///
/// The record's TTL and its expiry index entry are rewritten only when its expiry moved.
const SAVE: &str = r"
local rec = KEYS[1]
local f = redis.call('HMGET', rec, 'v', 's', 'i', 'x', 'uk', 'ds')
if not f[1] then return {0} end
local now = tonumber(ARGV[1])
local s, i, x = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local e0 = expiry(s, i, x)
if now >= e0 then return {0} end
if ARGV[3] == '1' and f[1] ~= ARGV[2] then return {2, f[1]} end
local nset, nrem = tonumber(ARGV[11]), tonumber(ARGV[12])
local first_set, last_set = 13, 12 + 2 * nset
local first_klen = last_set + 1
local first_rem = first_klen + nset
local last_rem = first_rem + nrem - 1
local first_rklen = last_rem + 1
local clear = ARGV[4] == '1'
local sum, n
if f[6] then
  local dv, a, b = string.match(f[6], '^(%d+) (%d+) (%d+)$')
  if dv == f[1] then sum, n = tonumber(a), tonumber(b) end
end
local changes = clear or nset > 0 or nrem > 0
if changes and (sum or ARGV[10] ~= '') then
  if clear then
    sum, n = 0, 0
  elseif not sum then
    sum, n = 0, 0
    local all = redis.call('HGETALL', rec)
    for j = 1, #all, 2 do
      if string.sub(all[j], 1, 2) == 'd:' then
        sum = sum + json_key_len(string.sub(all[j], 3)) + 1 + #all[j + 1]
        n = n + 1
      end
    end
  end
  local cur = {}
  local function len_of(field)
    local l = cur[field]
    if l == nil then
      if clear then l = 0 else l = redis.call('HSTRLEN', rec, field) end
    end
    return l
  end
  for j = 0, nrem - 1 do
    local field = ARGV[first_rem + j]
    local l = len_of(field)
    if l > 0 then
      sum = sum - (tonumber(ARGV[first_rklen + j]) + 1 + l)
      n = n - 1
    end
    cur[field] = 0
  end
  for j = 0, nset - 1 do
    local field, value = ARGV[first_set + 2 * j], ARGV[first_set + 2 * j + 1]
    local klen = tonumber(ARGV[first_klen + j])
    local l = len_of(field)
    if l > 0 then sum = sum - (klen + 1 + l) else n = n + 1 end
    sum = sum + klen + 1 + #value
    cur[field] = #value
  end
  if ARGV[10] ~= '' then
    local size = 2 + sum
    if n > 1 then size = size + n - 1 end
    if size > tonumber(ARGV[10]) then return {3, size} end
  end
end
if clear then
  local names = redis.call('HKEYS', rec)
  local data = {}
  for _, k in ipairs(names) do
    if string.sub(k, 1, 2) == 'd:' then data[#data + 1] = k end
  end
  hdel_from(rec, data, 1, #data)
end
hdel_from(rec, ARGV, first_rem, last_rem)
local h = {}
for j = first_set, last_set do h[#h + 1] = ARGV[j] end
if ARGV[5] ~= '' and tonumber(ARGV[5]) > s then
  s = tonumber(ARGV[5])
  h[#h + 1] = 's'
  h[#h + 1] = ARGV[5]
end
if ARGV[6] ~= '' then
  x = tonumber(ARGV[6])
  h[#h + 1] = 'x'
  h[#h + 1] = ARGV[6]
end
if ARGV[7] ~= '' then
  i = tonumber(ARGV[7])
  h[#h + 1] = 'i'
  h[#h + 1] = ARGV[7]
end
local v = string.format('%d', tonumber(f[1]) + 1)
h[#h + 1] = 'v'
h[#h + 1] = v
if sum then
  h[#h + 1] = 'ds'
  h[#h + 1] = v .. ' ' .. string.format('%d', sum) .. ' ' .. string.format('%d', n)
end
hset_from(rec, h, 1, #h)
local e = expiry(s, i, x)
if e ~= e0 then
  redis.call('ZADD', KEYS[2], score(e), member(ARGV[9], f[5]))
  redis.call('EXPIRE', rec, ttl(e, now, tonumber(ARGV[8])))
end
return {1, tonumber(v)}
";

/// KEYS: record, expiry index. ARGV: now, ttl slack, key hex.
/// Returns 1 if the record is live (and now touched), else 0.
const TOUCH: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x', 'uk')
if not f[1] then return 0 end
local now = tonumber(ARGV[1])
local s, i, x = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if now >= expiry(s, i, x) then return 0 end
if now > s then
  s = now
  redis.call('HSET', KEYS[1], 's', ARGV[1])
end
local e = expiry(s, i, x)
redis.call('ZADD', KEYS[2], score(e), member(ARGV[3], f[4]))
redis.call('EXPIRE', KEYS[1], ttl(e, now, tonumber(ARGV[2])))
return 1
";

/// KEYS: old record, new record, expiry index, [new owner's index, new owner's change time].
/// ARGV: now, P, old hex, new hex, new uk or '', new expires_at, new ttl, expected version of
/// the old record or '' (any), new authorized_at, field, value, ...
/// Returns {1} rotated, {0} old gone (or expired, then deleted), {2, version} old record live
/// at another version (nothing written), {-1} new key exists (nothing written), {-2} the new
/// record is signed in and its authorization predates its user's change time (nothing
/// written).
const ROTATE: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x', 'uk', 'v')
if not f[1] then return {0} end
local now = tonumber(ARGV[1])
local function drop_old()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], member(ARGV[3], f[4]))
  if f[4] then redis.call('SREM', ARGV[2] .. 'u:' .. f[4], ARGV[3]) end
end
if now >= expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3])) then
  drop_old()
  return {0}
end
if ARGV[8] ~= '' and f[5] ~= ARGV[8] then return {2, f[5]} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1} end
if KEYS[5] and stale(KEYS[5], ARGV[9]) then return {-2} end
drop_old()
hset_from(KEYS[2], ARGV, 10, #ARGV)
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[6], member(ARGV[4], ARGV[5]))
if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[4]) end
return {1}
";

/// KEYS: record, expiry index. ARGV: P, key hex. Returns 1 if a record was deleted.
const DELETE: &str = r"
local uk = redis.call('HGET', KEYS[1], 'uk')
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], member(ARGV[2], uk))
if uk then redis.call('SREM', ARGV[1] .. 'u:' .. uk, ARGV[2]) end
return 1
";

/// KEYS: user index, expiry index, user's change time.
/// ARGV: P, user id, uk, key hex to keep or '', now, how long to keep the change time (s).
/// Records the change time (the later of the stored one and `now`), deletes every record of
/// the user but the one kept, which gets `z` = the change time; returns how many records were
/// deleted. Drops stale members as it goes.
const DELETE_BY_USER: &str = r"
local changed = bump_epoch(KEYS[3], ARGV[5], ARGV[6])
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rec = ARGV[1] .. 's:' .. m
  local u = redis.call('HGET', rec, 'u')
  if m == ARGV[4] then
    if u == ARGV[2] then stamp(rec, changed) end
  else
    if u == ARGV[2] then
      redis.call('DEL', rec)
      n = n + 1
    end
    if u == ARGV[2] or not u then redis.call('ZREM', KEYS[2], member(m, ARGV[3])) end
    redis.call('SREM', KEYS[1], m)
  end
end
return n
";

/// KEYS: user index, expiry index. ARGV: P, uk.
/// Returns key hex and fields (HGETALL), alternating, for every record in the index; drops
/// stale members.
const LIST_BY_USER: &str = r"
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 's:' .. m)
  if #fields == 0 then
    redis.call('SREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], member(m, ARGV[2]))
  else
    out[#out + 1] = m
    out[#out + 1] = fields
  end
end
return out
";

/// KEYS: user index, expiry index, user's change time.
/// ARGV: P, user id, uk, roles JSON, now, how long to keep the change time (s).
/// Records the change time (the later of the stored one and `now`) and gives every record of
/// the user the roles and `z` = the change time; returns how many records changed.
const SET_ROLES_FOR_USER: &str = r"
local changed = bump_epoch(KEYS[3], ARGV[5], ARGV[6])
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rec = ARGV[1] .. 's:' .. m
  local u = redis.call('HGET', rec, 'u')
  if u == ARGV[2] then
    redis.call('HSET', rec, 'r', ARGV[4])
    stamp(rec, changed)
    redis.call('HINCRBY', rec, 'v', 1)
    n = n + 1
  elseif not u then
    redis.call('SREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], member(m, ARGV[3]))
  end
end
return n
";

/// KEYS: user index, expiry index. ARGV: P, user id, uk, handle.
/// Returns 1 if the user's session with that handle was deleted.
const DELETE_BY_HANDLE: &str = r"
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rec = ARGV[1] .. 's:' .. m
  local f = redis.call('HMGET', rec, 'u', 'h')
  if not f[1] then
    redis.call('SREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], member(m, ARGV[3]))
  elseif f[1] == ARGV[2] and f[2] == ARGV[4] then
    redis.call('DEL', rec)
    redis.call('SREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], member(m, ARGV[3]))
    return 1
  end
end
return 0
";

/// KEYS: expiry index. ARGV: P, now, limit.
/// Deletes up to `limit` records expired at `now`; returns how many. Members whose record
/// vanished by TTL are dropped (with their user index entry) without counting; members filed
/// under an expiry that moved later are filed again. The call stops once it has examined
/// `limit + 1000` members (checked per batch of at most 500), so its work stays bounded.
const DELETE_EXPIRED: &str = r"
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local deleted, examined = 0, 0
local budget = limit + 1000
while deleted < limit and examined < budget do
  local want = math.min(limit - deleted, 500)
  local batch = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0,
    string.format('%d', want))
  if #batch == 0 then break end
  for _, m in ipairs(batch) do
    examined = examined + 1
    local hex, uk = string.match(m, '^([^:]+):?(.*)$')
    local rec = ARGV[1] .. 's:' .. hex
    local f = redis.call('HMGET', rec, 's', 'i', 'x')
    if not f[1] then
      redis.call('ZREM', KEYS[1], m)
      if uk ~= '' then redis.call('SREM', ARGV[1] .. 'u:' .. uk, hex) end
    else
      local e = expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3]))
      if e <= now then
        redis.call('DEL', rec)
        redis.call('ZREM', KEYS[1], m)
        if uk ~= '' then redis.call('SREM', ARGV[1] .. 'u:' .. uk, hex) end
        deleted = deleted + 1
      else
        redis.call('ZADD', KEYS[1], score(e), m)
      end
    end
  end
end
return deleted
";
