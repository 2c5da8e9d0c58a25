//! [`SessionConfig`]: validated, secure-by-default settings of the layer.
//!
//! This file holds the settings and the types they are made of; `builder.rs` holds
//! [`SessionConfigBuilder`] and its setters, and `build.rs` its validation
//! ([`SessionConfigBuilder::build`]).

use std::sync::Arc;
use std::time::Duration;

use sessionward_core::SharedClock;

use crate::client::ClientAddrSource;
use crate::cookie::CookieStrings;
use crate::event_limit::EventLimiter;
use crate::throttle::GuessThrottle;

mod build;
mod builder;

pub(crate) use builder::MAX_LIFETIME;
pub use builder::{MAX_CLOCK_MARGIN, SessionConfigBuilder};

/// The `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests (the default; OWASP's preference).
    Strict,
    /// Also sent on top-level cross-site navigations (inbound links, OAuth callbacks). Keep GET
    /// handlers free of side effects if you choose it;
    /// [`CrossOriginGuard`](crate::CrossOriginGuard) still covers unsafe methods.
    Lax,
    /// Sent on every request, cross-site included. Requires `Secure`.
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Where the layer reads the session token from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// The session cookie only (the default: browsers).
    Cookie,
    /// `Authorization: Bearer <token>` only (mobile and native clients).
    Bearer,
    /// Either; a request that carries two different tokens has no session.
    CookieAndBearer,
}

impl Transport {
    pub(crate) fn cookie(self) -> bool {
        matches!(self, Self::Cookie | Self::CookieAndBearer)
    }

    pub(crate) fn bearer(self) -> bool {
        matches!(self, Self::Bearer | Self::CookieAndBearer)
    }
}

/// Timeout presets from NIST SP 800-63B-4 and the OWASP Session Management Cheat Sheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// AAL2 (and ASVS level 2): idle 30 minutes, absolute 12 hours. The default.
    Aal2,
    /// AAL3: idle 15 minutes, absolute 12 hours.
    Aal3,
    /// High-value applications (OWASP: 2-5 minutes idle): idle 5 minutes, absolute 4 hours.
    HighValue,
}

/// A configuration that a browser would silently reject, or that would weaken the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or holds characters a cookie name cannot hold.
    #[error("invalid cookie name {0:?}: use letters, digits and !#$%&'*+-.^_`|~")]
    InvalidCookieName(String),
    /// A `__Host-` cookie cannot carry a `Domain`.
    #[error("a `__Host-` cookie cannot have a Domain (browsers reject it)")]
    HostPrefixWithDomain,
    /// A `__Host-` cookie must have `Path=/`.
    #[error("a `__Host-` cookie must have Path=/ (browsers reject it)")]
    HostPrefixPath,
    /// `__Host-` and `__Secure-` cookies must be `Secure`.
    #[error("a `__Host-` or `__Secure-` cookie must be Secure (browsers reject it)")]
    PrefixWithoutSecure,
    /// `SameSite=None` without `Secure` is rejected by browsers.
    #[error("SameSite=None requires Secure (browsers reject it)")]
    SameSiteNoneWithoutSecure,
    /// A `Partitioned` cookie must be `Secure`.
    #[error("a Partitioned cookie must be Secure (browsers reject it)")]
    PartitionedWithoutSecure,
    /// A `Partitioned` cookie must be `SameSite=None`: it exists for cross-site iframes, where
    /// browsers never send a `Strict` or `Lax` cookie.
    #[error(
        "a Partitioned cookie needs SameSite=None (browsers never send a Strict or Lax cookie \
         to a cross-site iframe, which is what Partitioned is for)"
    )]
    PartitionedWithoutSameSiteNone,
    /// A timeout is zero.
    #[error("the {0} timeout must be more than zero")]
    ZeroTimeout(&'static str),
    /// A timeout is longer than 400 days (no session is meant to live for ever).
    #[error("the {0} timeout must be at most 400 days")]
    TimeoutTooLong(&'static str),
    /// The absolute timeout must be longer than the idle timeout.
    #[error("the absolute timeout ({absolute:?}) must be longer than the idle timeout ({idle:?})")]
    AbsoluteNotAfterIdle {
        /// The idle timeout.
        idle: Duration,
        /// The absolute timeout.
        absolute: Duration,
    },
    /// The touch interval must be shorter than the idle timeout (and the anonymous one).
    #[error("the touch interval must be shorter than the idle timeouts")]
    TouchIntervalTooLong,
    /// The anonymous idle timeout must not be longer than the signed-in one.
    #[error(
        "the anonymous idle timeout ({anonymous:?}) must not be longer than the idle timeout ({idle:?})"
    )]
    AnonymousIdleTooLong {
        /// The idle timeout of signed-in sessions.
        idle: Duration,
        /// The anonymous idle timeout.
        anonymous: Duration,
    },
    /// The authorization clock margin is longer than [`MAX_CLOCK_MARGIN`].
    #[error("the authorization clock margin must be at most 5 minutes")]
    ClockMarginTooLong,
    /// The path must start with `/` and hold no `;` or control character.
    #[error("invalid cookie path {0:?}")]
    InvalidPath(String),
    /// The domain holds a `;` or a control character.
    #[error("invalid cookie domain {0:?}")]
    InvalidDomain(String),
    /// An origin given to the cross-origin check is not `scheme://host[:port]`.
    #[error("invalid origin {0:?}: write scheme://host[:port], e.g. https://app.example.com")]
    InvalidOrigin(String),
    /// The proxy hop count is 0 or more than [`MAX_PROXY_HOPS`](crate::MAX_PROXY_HOPS).
    #[error(
        "the proxy hop count must be 1 to 16 (the number of trusted proxies in front), not {0}"
    )]
    InvalidProxyHops(usize),
    /// A [`GuessThrottle`](crate::GuessThrottle) setting is out of range.
    #[error("invalid guess throttle: {0}")]
    InvalidGuessThrottle(&'static str),
    /// The event rate limit is zero (use `None` for no limit).
    #[error("the event rate limit must be at least one line a minute (None: no limit)")]
    ZeroEventRateLimit,
    /// The sign-in page is not a same-origin path without query or fragment (see
    /// [`safe_next`](crate::safe_next)).
    #[error("invalid sign-in page {0:?}: write a path such as /login")]
    InvalidSignInPath(String),
    /// The name of the sign-in page's `next` parameter is not 1 to 64 letters, digits, `-`
    /// or `_`.
    #[error("invalid next parameter name {0:?}: use letters, digits, - and _")]
    InvalidNextParameter(String),
}

/// The layer's settings. Build one with [`SessionConfig::builder`]; the defaults are the
/// secure ones, and a combination a browser would reject fails at build time.
///
/// | setting | default |
/// | --- | --- |
/// | cookie | `__Host-id`, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain, Max-Age or Partitioned |
/// | idle timeout | 30 minutes |
/// | anonymous idle timeout | the idle timeout |
/// | absolute timeout | 12 hours |
/// | authorization clock margin | 1 second |
/// | touch interval | min(60 s, anonymous idle / 10) |
/// | transport | the cookie only |
/// | data limit | 64 KiB of JSON per session |
/// | client address | the connection's peer; no proxy header believed |
/// | guess throttle | off |
/// | attacker-triggerable events | at most 60 lines a minute per kind, the rest counted |
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub(crate) cookie_name: Arc<str>,
    pub(crate) persistent: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) anonymous_idle_timeout: Duration,
    pub(crate) absolute_timeout: Duration,
    pub(crate) authorization_clock_margin: Duration,
    pub(crate) touch_interval: Duration,
    pub(crate) transport: Transport,
    pub(crate) max_data_bytes: usize,
    pub(crate) clear_site_data: bool,
    pub(crate) no_store_when_signed_in: bool,
    pub(crate) bind_user_agent: bool,
    pub(crate) cross_origin: Option<crate::guard::CrossOriginGuard>,
    pub(crate) sign_in: Option<crate::sign_in::SignInPage>,
    pub(crate) clock: SharedClock,
    pub(crate) cookie: CookieStrings,
    pub(crate) client_addrs: ClientAddrSource,
    pub(crate) guess_throttle: Option<GuessThrottle>,
    /// Shared by clones: one budget per kind for every layer built from this configuration.
    pub(crate) events: Arc<EventLimiter>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl SessionConfig {
    /// A builder starting from the secure defaults.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder::default()
    }

    /// The idle timeout.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The idle timeout of anonymous sessions.
    #[must_use]
    pub fn anonymous_idle_timeout(&self) -> Duration {
        self.anonymous_idle_timeout
    }

    /// The absolute timeout.
    #[must_use]
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// How far before the request's start a sign-in's authorization is dated.
    #[must_use]
    pub fn authorization_clock_margin(&self) -> Duration {
        self.authorization_clock_margin
    }

    /// The cookie name.
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }
}
