//! The session identifier: [`SessionToken`] (the secret the client holds), [`SessionKey`] (its
//! SHA-256, the only form a store sees) and [`SessionHandle`] (a public, non-secret name for a
//! session, shown on "your sessions" pages).

use std::cell::RefCell;
use std::fmt;

use rand::rngs::{OsRng, StdRng};
use rand::{RngCore as _, SeedableRng as _, TryRngCore as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Length in bytes of the random part of a [`SessionToken`].
pub const TOKEN_BYTES: usize = 32;
/// Length in characters of an encoded [`SessionToken`] (unpadded base64url of 32 bytes).
pub const TOKEN_LEN: usize = 43;
/// Length in bytes of a [`SessionHandle`].
pub const HANDLE_BYTES: usize = 16;
/// Length in characters of an encoded [`SessionHandle`].
pub const HANDLE_LEN: usize = 22;

/// The operating system's random number generator failed (while seeding the generator that
/// session IDs come from).
///
/// Nothing falls back to a weaker source: the request that needed an ID fails (SEC-01).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RngError(#[source] rand::rand_core::OsError);

/// How many bytes a thread's generator hands out before it is seeded again from the OS.
///
/// 64 KiB is 1,365 token-and-handle pairs: the `getrandom` system call is paid once per 1,365
/// sign-ins instead of once per ID, and a compromise of one thread's generator state exposes
/// at most the IDs drawn since its last reseed on that thread.
const RESEED_AFTER_BYTES: usize = 64 * 1024;

/// One thread's generator: ChaCha12 ([`StdRng`]) keyed with 32 bytes from [`OsRng`].
struct Generator {
    rng: StdRng,
    /// Bytes left before the next reseed.
    left: usize,
}

impl Generator {
    fn seeded() -> Result<Self, RngError> {
        let mut seed = <StdRng as rand::SeedableRng>::Seed::default();
        OsRng.try_fill_bytes(&mut seed).map_err(RngError)?;
        Ok(Self {
            rng: StdRng::from_seed(seed),
            left: RESEED_AFTER_BYTES,
        })
    }
}

thread_local! {
    /// Seeded from the OS on a thread's first ID, and again every [`RESEED_AFTER_BYTES`].
    static GENERATOR: RefCell<Option<Generator>> = const { RefCell::new(None) };
}

/// Fills `buf` (at most [`RESEED_AFTER_BYTES`]) from this thread's generator, seeding it from
/// the OS first when it is new or has handed out its budget. If the OS fails, the error is
/// returned and nothing is drawn: there is no fallback, and the next call tries the OS again.
fn fill_random(buf: &mut [u8]) -> Result<(), RngError> {
    debug_assert!(buf.len() <= RESEED_AFTER_BYTES);
    GENERATOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|g| g.left < buf.len()) {
            *slot = None;
            *slot = Some(Generator::seeded()?);
        }
        if let Some(g) = slot.as_mut() {
            g.rng.fill_bytes(buf);
            g.left -= buf.len();
        }
        Ok(())
    })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Character -> 6-bit value, or `0xFF` for a character outside the base64url alphabet.
const DECODE: [u8; 256] = {
    let mut table = [0xFF_u8; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Encodes `N` bytes as unpadded base64url into `M` characters (`M` = `ceil(N * 4 / 3)`):
/// the inverse of [`decode_canonical`]. Written here rather than with the `base64` crate's
/// engine because a token's 43 characters are encoded on every sign-in and rotation, and the
/// engine's general set-up costs more than this loop for so short an input.
fn encode<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    let mut out = [0u8; M];
    let mut chunks = bytes.chunks_exact(3);
    let mut chars = out.chunks_mut(4);
    for (b, o) in (&mut chunks).zip(&mut chars) {
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, c) in o.iter_mut().enumerate() {
            *c = ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize];
        }
    }
    // One or two bytes left: two or three characters, the spare bits zero.
    let rest = chunks.remainder();
    if let Some(o) = chars.next() {
        let n = rest.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b))
            << (if rest.len() == 1 { 16 } else { 8 });
        for (i, c) in o.iter_mut().enumerate() {
            *c = ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize];
        }
    }
    out
}

/// The characters of [`encode`]'s output as text (the alphabet is ASCII).
fn ascii(chars: &[u8]) -> &str {
    // Every byte comes from `ALPHABET`, which is ASCII: this never fails.
    std::str::from_utf8(chars).unwrap_or_default()
}

/// Decodes exactly `N` bytes from `input` only if `input` is the canonical unpadded base64url
/// encoding of them: the right length, the alphabet, and zero spare bits (so no alias of a
/// valid value is accepted). For a given length it does the same work whatever the input: no
/// early exit on the first bad character.
fn decode_canonical<const N: usize>(input: &[u8], encoded_len: usize) -> Option<[u8; N]> {
    if input.len() != encoded_len {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    let mut chunks = input.chunks_exact(4);
    let mut bytes = out.chunks_mut(3);
    // Four characters carry three bytes.
    for (c, o) in (&mut chunks).zip(&mut bytes) {
        let [a, b, c, d] = [c[0], c[1], c[2], c[3]].map(|x| DECODE[usize::from(x)]);
        invalid |= a | b | c | d;
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let len = o.len();
        o.copy_from_slice(&three[..len]);
    }
    // The last two or three characters carry one or two bytes and 4 or 2 spare bits, which
    // must be zero.
    let rest = chunks.remainder();
    let mut n = 0u32;
    for &x in rest {
        let v = DECODE[usize::from(x)];
        invalid |= v;
        n = (n << 6) | u32::from(v & 0x3F);
    }
    let spare = match rest.len() {
        2 => {
            out[N - 1] = (n >> 4) as u8;
            n & 0xF
        }
        3 => {
            out[N - 2] = (n >> 10) as u8;
            out[N - 1] = (n >> 2) as u8;
            n & 0x3
        }
        _ => 0,
    };
    // `0xFF` marks a character outside the alphabet: its top bits survive the OR.
    (invalid & 0xC0 == 0 && spare == 0).then_some(out)
}

/// The secret session identifier that the client presents: 256 bits from a CSPRNG seeded by
/// the operating system, carried as 43 characters of unpadded base64url.
///
/// The generator is per thread: ChaCha12 (rand's `StdRng`) keyed with 32 bytes from the OS
/// (`OsRng`) on the thread's first ID and again after every 64 KiB it hands out (1,365 tokens
/// with their handles), so an ID costs a few hundred nanoseconds of user-space work instead of
/// a `getrandom` system call. If seeding fails, generation fails with [`RngError`]; nothing
/// falls back to a weaker source (SEC-01). As with any user-space generator, a process that
/// `fork`s keeps its parent's generator state in the child: do not fork a process that issues
/// sessions and keep issuing them in both.
///
/// The type is opaque on purpose: the field is private, [`Debug`] prints
/// `SessionToken(REDACTED)`, and there is no `Display` and no serde support, so a token cannot
/// end up in a log line or a serialized struct by accident. Stores never see it; they see its
/// [`SessionKey`].
///
/// ```
/// use sessionward_core::SessionToken;
///
/// let token = SessionToken::generate().expect("the OS RNG works");
/// let text = token.expose();
/// assert_eq!(text.len(), 43);
/// assert_eq!(SessionToken::parse(&text).map(|t| t.key()), Some(token.key()));
/// assert_eq!(format!("{token:?}"), "SessionToken(REDACTED)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    bytes: [u8; TOKEN_BYTES],
}

impl SessionToken {
    /// Draws a new token from this thread's CSPRNG (seeded from the OS; see the type docs).
    ///
    /// # Errors
    /// [`RngError`] when seeding from the OS fails; there is no fallback.
    pub fn generate() -> Result<Self, RngError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self { bytes })
    }

    /// Draws a new token and a new [`SessionHandle`] for it in one draw from the generator
    /// (what a sign-in, a rotation and a new session need).
    ///
    /// # Errors
    /// [`RngError`] when seeding from the OS fails; there is no fallback.
    pub fn generate_with_handle() -> Result<(Self, SessionHandle), RngError> {
        let mut both = [0u8; TOKEN_BYTES + HANDLE_BYTES];
        fill_random(&mut both)?;
        let mut bytes = [0u8; TOKEN_BYTES];
        let mut handle = [0u8; HANDLE_BYTES];
        bytes.copy_from_slice(&both[..TOKEN_BYTES]);
        handle.copy_from_slice(&both[TOKEN_BYTES..]);
        Ok((Self { bytes }, SessionHandle(handle)))
    }

    /// Parses a presented value strictly: exactly 43 characters of the base64url alphabet
    /// whose two spare bits are zero. Anything else is `None` (the request has no session).
    ///
    /// Parsing never touches a store, so malformed input costs no lookup (SEC-10).
    #[must_use]
    pub fn parse(input: &str) -> Option<Self> {
        Self::parse_bytes(input.as_bytes())
    }

    /// Like [`SessionToken::parse`], for raw header bytes (which may not be UTF-8).
    #[must_use]
    pub fn parse_bytes(input: &[u8]) -> Option<Self> {
        decode_canonical::<TOKEN_BYTES>(input, TOKEN_LEN).map(|bytes| Self { bytes })
    }

    /// The value to hand to the client (cookie value or bearer token).
    ///
    /// This and [`SessionToken::expose_to`] are the only ways to read the secret; call them
    /// only where the value goes to the client that owns it.
    #[must_use]
    pub fn expose(&self) -> String {
        let mut out = String::with_capacity(TOKEN_LEN);
        self.expose_to(&mut out);
        out
    }

    /// Like [`SessionToken::expose`], appending the 43 characters to `out` (for a caller that
    /// builds the `Set-Cookie` value around it without a second allocation).
    pub fn expose_to(&self, out: &mut String) {
        out.push_str(ascii(&encode::<TOKEN_BYTES, TOKEN_LEN>(&self.bytes)));
    }

    /// The SHA-256 of the token: the key under which stores keep the session.
    #[must_use]
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.bytes).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(REDACTED)")
    }
}

/// The SHA-256 digest of a [`SessionToken`]: what stores use as the primary key.
///
/// A leaked table, backup or log line holding keys cannot be replayed as a session, and
/// lookups by digest do not compare secrets byte by byte (SEC-29, SEC-30). `Debug` shows only
/// the first four bytes in hex, which is enough to correlate log lines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Wraps 32 bytes read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a key from a slice; `None` unless it is exactly 32 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex of the whole digest (64 characters), for stores that key by text.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Lowercase hex of the first four bytes: a log-safe correlation id.
    #[must_use]
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }

    /// The first eight bytes as an integer; uniformly distributed, so stores may use it as a
    /// hash without hashing again.
    #[must_use]
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", self.short())
    }
}

/// A public, non-secret name for one session: 128 random bits as 22 base64url characters.
///
/// "Your sessions" pages show handles and end sessions by handle; a handle never grants
/// access, and ending a session by handle is scoped to its owner
/// ([`SessionStore::delete_by_handle`](crate::SessionStore::delete_by_handle)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle([u8; HANDLE_BYTES]);

impl SessionHandle {
    /// Draws a new random handle from the same generator as [`SessionToken::generate`]
    /// ([`SessionToken::generate_with_handle`] draws both at once).
    ///
    /// # Errors
    /// [`RngError`] when seeding from the OS fails; there is no fallback.
    pub fn generate() -> Result<Self, RngError> {
        let mut bytes = [0u8; HANDLE_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the 22-character form strictly (canonical base64url).
    #[must_use]
    pub fn parse(input: &str) -> Option<Self> {
        decode_canonical::<HANDLE_BYTES>(input.as_bytes(), HANDLE_LEN).map(Self)
    }

    /// Wraps 16 bytes read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; HANDLE_BYTES]) -> Self {
        Self(bytes)
    }

    /// The 16 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; HANDLE_BYTES] {
        &self.0
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&encode::<HANDLE_BYTES, HANDLE_LEN>(&self.0)))
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({self})")
    }
}

impl Serialize for SessionHandle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionHandle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid session handle"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_hashes() {
        let t = SessionToken::generate().expect("rng");
        let s = t.expose();
        assert_eq!(s.len(), TOKEN_LEN);
        assert!(s.bytes().all(|b| DECODE[usize::from(b)] != 0xFF));
        let mut appended = String::from("id=");
        t.expose_to(&mut appended);
        assert_eq!(appended, format!("id={s}"));
        let back = SessionToken::parse(&s).expect("parses");
        assert_eq!(back, t);
        assert_eq!(back.key(), t.key());
        assert_ne!(t.key().as_bytes(), &t.bytes);
    }

    #[test]
    fn non_canonical_alias_is_refused() {
        let t = SessionToken::generate().expect("rng");
        let s = t.expose();
        // The last character carries 4 data bits and 2 spare bits; flipping a spare bit gives
        // an alias that a lenient decoder would map to the same bytes.
        let last = s.as_bytes()[TOKEN_LEN - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet
            .iter()
            .position(|&c| c == last)
            .expect("in alphabet");
        let alias = alphabet[idx ^ 1];
        let mut bad = s.into_bytes();
        bad[TOKEN_LEN - 1] = alias;
        assert!(SessionToken::parse_bytes(&bad).is_none());
    }

    #[test]
    fn malformed_values_are_refused() {
        let t = SessionToken::generate().expect("rng").expose();
        for bad in [
            String::new(),
            "a".into(),
            t[..42].to_string(),
            format!("{t}A"),
            format!("{t}="),
            format!("\"{}\"", &t[..41]),
            t.replace(['-', '_'], "+"),
            "%41".repeat(14) + "A",
            "A".repeat(4096),
        ] {
            if bad != t {
                assert!(SessionToken::parse(&bad).is_none(), "accepted {bad:?}");
            }
        }
        assert!(SessionToken::parse_bytes(&[0xff; TOKEN_LEN]).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let t = SessionToken::generate().expect("rng");
        let d = format!("{t:?}");
        assert_eq!(d, "SessionToken(REDACTED)");
        assert!(!format!("{:?}", t.key()).contains(&t.expose()));
        assert_eq!(format!("{:?}", t.key()).len(), "SessionKey(…)".len() + 8);
    }

    fn left() -> Option<usize> {
        GENERATOR.with_borrow(|slot| slot.as_ref().map(|g| g.left))
    }

    #[test]
    fn generator_is_seeded_per_thread_and_reseeded_after_its_budget() {
        std::thread::spawn(|| {
            assert_eq!(
                left(),
                None,
                "a new thread has no generator until its first ID"
            );
            let (t, h) = SessionToken::generate_with_handle().expect("rng");
            assert_eq!(
                left(),
                Some(RESEED_AFTER_BYTES - TOKEN_BYTES - HANDLE_BYTES)
            );
            assert_ne!(&t.bytes[..HANDLE_BYTES], h.as_bytes());
            let mut seen = std::collections::HashSet::new();
            let per_budget = RESEED_AFTER_BYTES / (TOKEN_BYTES + HANDLE_BYTES);
            let mut reseeded = false;
            for _ in 0..=per_budget {
                let before = left().expect("seeded");
                let (t, _) = SessionToken::generate_with_handle().expect("rng");
                assert!(seen.insert(t.bytes));
                let after = left().expect("seeded");
                if after > before {
                    reseeded = true;
                    assert_eq!(after, RESEED_AFTER_BYTES - TOKEN_BYTES - HANDLE_BYTES);
                }
            }
            assert!(
                reseeded,
                "the budget ran out, so the generator was seeded again"
            );
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn threads_draw_different_ids() {
        let a = std::thread::spawn(|| SessionToken::generate().expect("rng").bytes);
        let b = std::thread::spawn(|| SessionToken::generate().expect("rng").bytes);
        assert_ne!(a.join().expect("a"), b.join().expect("b"));
    }

    #[test]
    fn handle_round_trips() {
        let h = SessionHandle::generate().expect("rng");
        let s = h.to_string();
        assert_eq!(s.len(), HANDLE_LEN);
        assert_eq!(SessionHandle::parse(&s), Some(h));
        let json = serde_json::to_string(&h).expect("ser");
        assert_eq!(serde_json::from_str::<SessionHandle>(&json).expect("de"), h);
        assert!(SessionHandle::parse("not-a-handle").is_none());
    }
}
