//! [`SessionConfigBuilder::build`]: the validation that turns the settings into a
//! [`SessionConfig`], or names the first problem.

use std::sync::Arc;
use std::time::Duration;

use super::{
    ConfigError, MAX_CLOCK_MARGIN, MAX_LIFETIME, SameSite, SessionConfig, SessionConfigBuilder,
};
use crate::client::{ClientAddrSource, MAX_PROXY_HOPS};
use crate::cookie::CookieStrings;
use crate::event_limit::EventLimiter;

/// Whether `name` starts with `prefix`, ASCII case ignored (how browsers read cookie prefixes).
fn has_prefix_ignoring_case(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Visible ASCII without `;`: what a cookie attribute value may hold (RFC 6265 §4.1.1).
fn is_attr_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

impl SessionConfigBuilder {
    /// Validates and builds.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first problem.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let name = &self.cookie_name;
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(ConfigError::InvalidCookieName(name.clone()));
        }
        if !self.path.starts_with('/') || !is_attr_safe(&self.path) {
            return Err(ConfigError::InvalidPath(self.path));
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || !is_attr_safe(d))
        {
            return Err(ConfigError::InvalidDomain(d.clone()));
        }
        // Browsers match the prefixes case-insensitively (RFC 6265bis), so `__host-id` gets the
        // same requirements as `__Host-id`: a lower-case spelling must not slip past them.
        let host_prefix = has_prefix_ignoring_case(name, "__Host-");
        if host_prefix {
            if self.domain.is_some() {
                return Err(ConfigError::HostPrefixWithDomain);
            }
            if self.path != "/" {
                return Err(ConfigError::HostPrefixPath);
            }
        }
        if (host_prefix || has_prefix_ignoring_case(name, "__Secure-")) && !self.secure {
            return Err(ConfigError::PrefixWithoutSecure);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if self.partitioned && !self.secure {
            return Err(ConfigError::PartitionedWithoutSecure);
        }
        if self.partitioned && self.same_site != SameSite::None {
            return Err(ConfigError::PartitionedWithoutSameSiteNone);
        }
        if self.idle_timeout.as_secs() == 0 {
            return Err(ConfigError::ZeroTimeout("idle"));
        }
        if self.absolute_timeout.as_secs() == 0 {
            return Err(ConfigError::ZeroTimeout("absolute"));
        }
        if self.absolute_timeout > MAX_LIFETIME {
            return Err(ConfigError::TimeoutTooLong("absolute"));
        }
        if self.idle_timeout > MAX_LIFETIME {
            return Err(ConfigError::TimeoutTooLong("idle"));
        }
        if self.absolute_timeout <= self.idle_timeout {
            return Err(ConfigError::AbsoluteNotAfterIdle {
                idle: self.idle_timeout,
                absolute: self.absolute_timeout,
            });
        }
        let anonymous_idle_timeout = self.anonymous_idle_timeout.unwrap_or(self.idle_timeout);
        if anonymous_idle_timeout.as_secs() == 0 {
            return Err(ConfigError::ZeroTimeout("anonymous idle"));
        }
        if anonymous_idle_timeout > self.idle_timeout {
            return Err(ConfigError::AnonymousIdleTooLong {
                idle: self.idle_timeout,
                anonymous: anonymous_idle_timeout,
            });
        }
        if self.authorization_clock_margin > MAX_CLOCK_MARGIN {
            return Err(ConfigError::ClockMarginTooLong);
        }
        let touch_interval = self
            .touch_interval
            .unwrap_or_else(|| Duration::from_secs(60).min(anonymous_idle_timeout / 10));
        if touch_interval >= anonymous_idle_timeout {
            return Err(ConfigError::TouchIntervalTooLong);
        }
        let mut cross_origin = self.cross_origin;
        for origin in &self.public_origins {
            let origin = crate::guard::Origin::configured(origin)?;
            if let Some(guard) = &mut cross_origin {
                guard.add_public(origin);
            }
        }
        let client_addrs = match self.trusted_proxies {
            Some((_, hops)) if hops == 0 || hops > MAX_PROXY_HOPS => {
                return Err(ConfigError::InvalidProxyHops(hops));
            }
            Some((proxies, hops)) => ClientAddrSource::new(proxies, hops, self.forwarded_header),
            None => ClientAddrSource::default(),
        };
        if let Some(t) = &self.guess_throttle {
            t.validate()?;
        }
        if self.event_rate_limit == Some(0) {
            return Err(ConfigError::ZeroEventRateLimit);
        }
        let sign_in = match self.sign_in_page {
            Some(path) => Some(crate::sign_in::SignInPage::new(path, self.next_parameter)?),
            None => None,
        };
        if self.insecure_acknowledged {
            tracing::warn!(
                target: "sessionward",
                "session cookies are not Secure (dev_insecure): never use this in production"
            );
        }
        let cookie = CookieStrings::new(
            &self.cookie_name,
            &self.path,
            self.domain.as_deref(),
            self.secure,
            self.same_site.as_str(),
            self.partitioned,
        );
        Ok(SessionConfig {
            cookie_name: Arc::from(self.cookie_name),
            persistent: self.persistent,
            idle_timeout: self.idle_timeout,
            anonymous_idle_timeout,
            absolute_timeout: self.absolute_timeout,
            authorization_clock_margin: self.authorization_clock_margin,
            touch_interval,
            transport: self.transport,
            max_data_bytes: self.max_data_bytes,
            clear_site_data: self.clear_site_data,
            no_store_when_signed_in: self.no_store_when_signed_in,
            bind_user_agent: self.bind_user_agent,
            cross_origin,
            events: Arc::new(EventLimiter::new(self.event_rate_limit, self.clock.clone())),
            sign_in,
            clock: self.clock,
            cookie,
            client_addrs,
            guess_throttle: self.guess_throttle,
        })
    }
}
