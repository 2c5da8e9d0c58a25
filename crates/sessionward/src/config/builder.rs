//! [`SessionConfigBuilder`]: the settings as given, with their defaults and setters.

use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{SharedClock, SystemClock};

#[cfg(doc)]
use super::{ConfigError, SessionConfig};
use super::{Preset, SameSite, Transport};
use crate::client::{ForwardedHeader, IpRange};
use crate::event_limit::DEFAULT_PER_MINUTE;
use crate::throttle::GuessThrottle;

/// Builds a [`SessionConfig`].
///
/// ```
/// use std::time::Duration;
/// use sessionward::{SameSite, SessionConfig, Transport};
///
/// let config = SessionConfig::builder()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .absolute_timeout(Duration::from_secs(8 * 60 * 60))
///     .same_site(SameSite::Lax)
///     .transport(Transport::CookieAndBearer)
///     .build()
///     .expect("a valid configuration");
/// assert_eq!(config.idle_timeout(), Duration::from_secs(900));
///
/// // A cookie that browsers would drop is an error, not a silent failure:
/// assert!(SessionConfig::builder().domain("example.com").build().is_err());
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionConfigBuilder {
    pub(super) cookie_name: String,
    pub(super) secure: bool,
    pub(super) insecure_acknowledged: bool,
    pub(super) same_site: SameSite,
    pub(super) path: String,
    pub(super) domain: Option<String>,
    pub(super) partitioned: bool,
    pub(super) persistent: bool,
    pub(super) idle_timeout: Duration,
    pub(super) anonymous_idle_timeout: Option<Duration>,
    pub(super) absolute_timeout: Duration,
    pub(super) authorization_clock_margin: Duration,
    pub(super) touch_interval: Option<Duration>,
    pub(super) transport: Transport,
    pub(super) max_data_bytes: usize,
    pub(super) clear_site_data: bool,
    pub(super) no_store_when_signed_in: bool,
    pub(super) bind_user_agent: bool,
    pub(super) cross_origin: Option<crate::guard::CrossOriginGuard>,
    pub(super) public_origins: Vec<String>,
    pub(super) sign_in_page: Option<String>,
    pub(super) next_parameter: String,
    pub(super) clock: SharedClock,
    pub(super) trusted_proxies: Option<(Vec<IpRange>, usize)>,
    pub(super) forwarded_header: ForwardedHeader,
    pub(super) guess_throttle: Option<GuessThrottle>,
    pub(super) event_rate_limit: Option<u32>,
}

impl Default for SessionConfigBuilder {
    fn default() -> Self {
        Self {
            cookie_name: "__Host-id".to_owned(),
            secure: true,
            insecure_acknowledged: false,
            same_site: SameSite::Strict,
            path: "/".to_owned(),
            domain: None,
            partitioned: false,
            persistent: false,
            idle_timeout: Duration::from_secs(30 * 60),
            anonymous_idle_timeout: None,
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
            authorization_clock_margin: Duration::from_secs(1),
            touch_interval: None,
            transport: Transport::Cookie,
            max_data_bytes: 64 * 1024,
            clear_site_data: false,
            no_store_when_signed_in: true,
            bind_user_agent: false,
            cross_origin: Some(crate::guard::CrossOriginGuard::new()),
            public_origins: Vec::new(),
            sign_in_page: None,
            next_parameter: "next".to_owned(),
            clock: Arc::new(SystemClock),
            trusted_proxies: None,
            forwarded_header: ForwardedHeader::XForwardedFor,
            guess_throttle: None,
            event_rate_limit: Some(DEFAULT_PER_MINUTE),
        }
    }
}

/// The longest timeout or lifetime accepted: 400 days, the most browsers keep a cookie.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

/// The longest [authorization clock margin](SessionConfigBuilder::authorization_clock_margin)
/// accepted: 5 minutes (clocks further apart than that are a fault to fix, not to absorb).
pub const MAX_CLOCK_MARGIN: Duration = Duration::from_secs(5 * 60);

impl SessionConfigBuilder {
    /// The cookie name. Default: `__Host-id` (generic, and the prefix makes browsers refuse a
    /// `Domain` or non-`Secure` variant planted by a sibling subdomain).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// `SameSite`. Default: `Strict`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The cookie `Path`. Default: `/` (required by `__Host-`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie `Domain`. Default: none (a host-only cookie, required by `__Host-`).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Partitioned` attribute (CHIPS): for an app that runs in a cross-site iframe, where
    /// browsers that restrict third-party cookies may still keep a partitioned one, in a jar of
    /// its own per embedding (top-level) site. Default: off.
    ///
    /// It needs `Secure` (browsers reject a `Partitioned` cookie without it) and
    /// [`SameSite::None`] (a `Strict` or `Lax` cookie is never sent to a cross-site iframe,
    /// so partitioning it would change nothing); [`build`](Self::build) refuses either
    /// omission ([`ConfigError::PartitionedWithoutSecure`],
    /// [`ConfigError::PartitionedWithoutSameSiteNone`]). The attribute is on every
    /// `Set-Cookie` of the session cookie, the one that clears it included (without it, the
    /// clearing cookie would address an unpartitioned cookie of that name). The default
    /// `__Host-id` name suits it (the prefix and `Partitioned` go together). The cross-origin
    /// check still applies: requests the embedded app makes to itself are same-origin.
    ///
    /// ```
    /// use sessionward::{ConfigError, SameSite, SessionConfig};
    /// let embedded = SessionConfig::builder()
    ///     .same_site(SameSite::None)
    ///     .partitioned(true)
    ///     .build();
    /// assert!(embedded.is_ok());
    /// // With the default SameSite=Strict the cookie would never reach the iframe:
    /// let c = SessionConfig::builder().partitioned(true).build();
    /// assert!(matches!(c, Err(ConfigError::PartitionedWithoutSameSiteNone)));
    /// ```
    pub fn partitioned(mut self, on: bool) -> Self {
        self.partitioned = on;
        self
    }

    /// Persistent cookies: `Max-Age` set to the session's remaining absolute lifetime, so the
    /// browser keeps the cookie across restarts. Default: off (a browser-session cookie that
    /// is never written to permanent storage). The cookie never outlives the server-side
    /// absolute expiry, and cookie expiry never enforces a timeout: the server does.
    pub fn persistent_cookies(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Inactivity after which a session ends. Default: 30 minutes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Inactivity after which an anonymous session (a cart, a pre-sign-in flow) ends; at most
    /// the [idle timeout](Self::idle_timeout). Shorter means a flood of anonymous sessions
    /// (each request without a cookie that writes to its session makes one) is forgotten
    /// sooner. A sign-in gives the session the signed-in idle timeout. Default: the idle
    /// timeout.
    pub fn anonymous_idle_timeout(mut self, timeout: Duration) -> Self {
        self.anonymous_idle_timeout = Some(timeout);
        self
    }

    /// Time after sign-in after which a session ends whatever the activity. Default: 12 hours.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// How much earlier than the request's start a sign-in or a privilege change dates the
    /// authorization it decides (the record's `authorized_at`, SEC-16). The store refuses such
    /// a session if the user's authorization changed (roles set, sessions ended, account
    /// disabled) at or after that date. The margin covers two things: the store keeps whole
    /// seconds, so a change and a sign-in in the same second would otherwise look ordered the
    /// wrong way round; and the clocks of the application servers sharing a store differ, so a
    /// sign-in on a server whose clock is ahead could otherwise date itself after a change made
    /// on another server while it ran. Set it to the worst clock difference between your
    /// servers plus one second. The cost: a sign-in that starts within the margin after a
    /// change of the same user's authorization is refused with 409 `authorization_changed`
    /// (the client signs in again). At most [`MAX_CLOCK_MARGIN`]. Default: 1 second.
    pub fn authorization_clock_margin(mut self, margin: Duration) -> Self {
        self.authorization_clock_margin = margin;
        self
    }

    /// How often activity is written to the store (`touch`). Default: min(60 s, anonymous
    /// idle / 10).
    /// A shorter interval costs writes; idle expiry can only come early by up to this much,
    /// never late.
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = Some(interval);
        self
    }

    /// Where tokens are read from. Default: [`Transport::Cookie`].
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Cap on a session's data, in bytes of JSON. Default: 64 KiB. A write past it fails with
    /// a 413 error.
    pub fn max_data_bytes(mut self, limit: usize) -> Self {
        self.max_data_bytes = limit;
        self
    }

    /// Send `Clear-Site-Data: "cookies", "storage"` on logout. Default: off.
    pub fn clear_site_data_on_logout(mut self, on: bool) -> Self {
        self.clear_site_data = on;
        self
    }

    /// Add `Cache-Control: no-store` to every response of a signed-in session, not only to
    /// those that set or clear the cookie. Default: on.
    pub fn no_store_when_signed_in(mut self, on: bool) -> Self {
        self.no_store_when_signed_in = on;
        self
    }

    /// Sets both timeouts from a [`Preset`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionward::{Preset, SessionConfig};
    /// let c = SessionConfig::builder().preset(Preset::Aal3).build().expect("valid");
    /// assert_eq!(c.idle_timeout(), Duration::from_secs(15 * 60));
    /// ```
    pub fn preset(self, preset: Preset) -> Self {
        let (idle, absolute) = match preset {
            Preset::Aal2 => (30 * 60, 12 * 3600),
            Preset::Aal3 => (15 * 60, 12 * 3600),
            Preset::HighValue => (5 * 60, 4 * 3600),
        };
        self.idle_timeout(Duration::from_secs(idle))
            .absolute_timeout(Duration::from_secs(absolute))
    }

    /// Ends a session that arrives with a `User-Agent` other than the one it was signed in
    /// with. Default: off, since proxies and browser updates change it; either way a change
    /// emits a `session.anomaly` event (SEC-35).
    pub fn bind_user_agent(mut self, on: bool) -> Self {
        self.bind_user_agent = on;
        self
    }

    /// Refuses, with 403, a request with an unsafe method that carries the session cookie and
    /// that a browser sends from another origin (the rules of
    /// [`CrossOriginGuard`](crate::CrossOriginGuard), SEC-36). Default: on, trusting only
    /// same-origin requests. Pass `Some(guard)` to trust more origins, `None` to turn it off.
    ///
    /// ```
    /// use sessionward::{CrossOriginGuard, SessionConfig};
    /// let guard = CrossOriginGuard::new().trust_origin("https://partner.example.net");
    /// let c = SessionConfig::builder()
    ///     .cross_origin_check(Some(guard.expect("a valid origin")))
    ///     .build();
    /// assert!(c.is_ok());
    /// ```
    pub fn cross_origin_check(mut self, guard: Option<crate::guard::CrossOriginGuard>) -> Self {
        self.cross_origin = guard;
        self
    }

    /// Declares one of the app's public origins, the URL people use
    /// (`https://app.example.com`), for the session layer's cross-origin check, whichever
    /// guard [`cross_origin_check`](Self::cross_origin_check) sets. Call it once per origin.
    /// A request without `Sec-Fetch-Site` then counts as same-origin only if its `Origin` is
    /// one of these (scheme included), not whatever `Host` a reverse proxy forwards. See
    /// [`CrossOriginGuard::public_origin`](crate::CrossOriginGuard::public_origin), which does
    /// the same for that layer. Default: none (the request's `Host`).
    ///
    /// ```
    /// use sessionward::{ConfigError, SessionConfig};
    /// let c = SessionConfig::builder().public_origin("https://app.example.com").build();
    /// assert!(c.is_ok());
    /// let c = SessionConfig::builder().public_origin("app.example.com").build();
    /// assert!(matches!(c, Err(ConfigError::InvalidOrigin(_))));
    /// ```
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origins.push(origin.into());
        self
    }

    /// The sign-in page, for the answer to a request that needs a session and has none
    /// ([`RequireAuth`](crate::RequireAuth), [`RequireRole`](crate::RequireRole),
    /// [`RequireFreshAuth`](crate::RequireFreshAuth), [`require_auth`](crate::require_auth),
    /// [`require_role`](crate::require_role)):
    ///
    /// | request | answer |
    /// | --- | --- |
    /// | browser navigation (`Sec-Fetch-Mode: navigate` or `Accept: text/html`) | 303 to `path?next=<where it was going>` (`next` only for `GET`/`HEAD`, and only if [`safe_next`](crate::safe_next) accepts it) |
    /// | htmx (`HX-Request: true`) | 401 with `HX-Redirect: path?next=<the page, from HX-Current-URL>` |
    /// | anything else | 401 as without a sign-in page |
    ///
    /// Every 401 carries `WWW-Authenticate` (`Bearer` with the bearer transport, `Cookie
    /// form-action="path"` with the cookie), with or without a sign-in page. A signed-in user
    /// without the role gets 403 and is never redirected, and the sign-in page itself is
    /// never redirected to itself. Default: none (every client gets the 401).
    ///
    /// ```
    /// use sessionward::{ConfigError, SessionConfig};
    /// assert!(SessionConfig::builder().sign_in_page("/login").build().is_ok());
    /// let c = SessionConfig::builder().sign_in_page("//evil.example").build();
    /// assert!(matches!(c, Err(ConfigError::InvalidSignInPath(_))));
    /// ```
    pub fn sign_in_page(mut self, path: impl Into<String>) -> Self {
        self.sign_in_page = Some(path.into());
        self
    }

    /// The name of the sign-in page's query parameter that says where to go after signing
    /// in. Default: `next`.
    pub fn next_parameter(mut self, name: impl Into<String>) -> Self {
        self.next_parameter = name.into();
        self
    }

    /// The clock. Default: the system clock; tests pass a
    /// [`TestClock`](sessionward_core::TestClock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Believes the client address that reverse proxies forward, for requests whose
    /// connection's peer is in one of `proxies`; `hops` is the number of trusted proxies in
    /// front of the app (1 to 16). Default: none: the [`ClientAddr`](crate::ClientAddr) is the
    /// peer address, whatever the headers say, since any client can write them.
    ///
    /// The rule: only when the peer is in `proxies`, the header named by
    /// [`forwarded_header`](Self::forwarded_header) (default `X-Forwarded-For`) is read as
    /// one list over all its fields, and the entry `hops` from the right is the client (1: the
    /// entry the nearest proxy appended; 2: the one the proxy before it appended, and so on).
    /// Only those `hops` entries are examined. A missing or short header, or one of those
    /// entries that is not an IP address (`unknown`, an obfuscated name, junk, over-long),
    /// gives the peer address instead: a malformed header never names a client. Set `hops` to
    /// the exact number of proxies that append to the header: one too many and a client can
    /// choose its address, one too few and every client looks like a proxy.
    ///
    /// ```
    /// use sessionward::{ConfigError, IpRange, SessionConfig};
    /// let proxy: IpRange = "10.0.0.0/8".parse().expect("a range");
    /// let c = SessionConfig::builder().trusted_proxies([proxy], 1).build();
    /// assert!(c.is_ok());
    /// let c = SessionConfig::builder().trusted_proxies([proxy], 0).build();
    /// assert!(matches!(c, Err(ConfigError::InvalidProxyHops(0))));
    /// ```
    pub fn trusted_proxies(
        mut self,
        proxies: impl IntoIterator<Item = IpRange>,
        hops: usize,
    ) -> Self {
        self.trusted_proxies = Some((proxies.into_iter().collect(), hops));
        self
    }

    /// The header trusted proxies write the client address in. Default:
    /// [`ForwardedHeader::XForwardedFor`]. Only read for requests from a trusted proxy
    /// ([`trusted_proxies`](Self::trusted_proxies)).
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
        self
    }

    /// Turns on the guessing throttle (SEC-34): a client that presents too many malformed or
    /// unknown session IDs gets 429 for a while on requests that present one, before any
    /// store access; sessions it has seen valid are never refused. Default: off: behind a
    /// reverse proxy without [`trusted_proxies`](Self::trusted_proxies) every client has the
    /// proxy's address, and one guesser would then block the valid sessions this process
    /// has not seen yet (issued by another instance, or before a restart); the 256-bit IDs
    /// already make guessing hopeless, and the events (rate limited, with `client`) make it
    /// visible either way. See [`GuessThrottle`] for the exact rule and its defaults.
    ///
    /// ```
    /// use sessionward::{GuessThrottle, SessionConfig};
    /// let c = SessionConfig::builder().guess_throttle(GuessThrottle::new()).build();
    /// assert!(c.is_ok());
    /// ```
    pub fn guess_throttle(mut self, throttle: GuessThrottle) -> Self {
        self.guess_throttle = Some(throttle);
        self
    }

    /// The most lines a minute of each event kind a client can trigger at will
    /// (`session.malformed`, `session.ambiguous`, `session.unknown`, `session.anomaly`,
    /// `session.store_error`, `session.created` for anonymous sessions, `session.denied`,
    /// `request.cross_origin_blocked`, `session.throttled`, `session.guessing`); a burst of
    /// that many goes out at once. Dropped lines are counted, and the next line of the kind is
    /// preceded by an `events.suppressed` line with the count. Sign-in, rotation, sign-out and
    /// admin events are never dropped. Default: `Some(60)`; `None`: no limit.
    ///
    /// ```
    /// use sessionward::SessionConfig;
    /// assert!(SessionConfig::builder().event_rate_limit(Some(600)).build().is_ok());
    /// assert!(SessionConfig::builder().event_rate_limit(Some(0)).build().is_err());
    /// ```
    pub fn event_rate_limit(mut self, per_minute: Option<u32>) -> Self {
        self.event_rate_limit = per_minute;
        self
    }

    /// Drops `Secure` from the cookie, for plain-HTTP development only. Chromium and Firefox
    /// accept `Secure` cookies from `http://localhost` and `http://127.0.0.1`, so they do not
    /// need this there; WebKit (WebKitGTK 2.50, Safari) drops every `Secure` cookie from an
    /// http URL, localhost included: serve https locally instead (the demo app's
    /// `--self-signed`), or use this. Logs a warning at build time. Refused with a `__Host-`
    /// or `__Secure-` name: pick another name with [`cookie_name`](Self::cookie_name). The
    /// layer never decides `Secure` from the request's scheme or `X-Forwarded-Proto`.
    pub fn dev_insecure(mut self) -> Self {
        self.secure = false;
        self.insecure_acknowledged = true;
        self
    }
}
