//! HTTPS: the TLS configuration from `--tls-cert` and `--tls-key` (PEM files), or a
//! certificate for `localhost` and `127.0.0.1` made at start with `--self-signed`.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::BoxError;

/// Where the server's certificate comes from.
#[derive(Debug)]
pub(crate) enum Source<'a> {
    /// PEM files: the certificate chain, then the private key.
    Files { cert: &'a Path, key: &'a Path },
    /// A self-signed certificate for `localhost` and `127.0.0.1`, made now.
    SelfSigned,
}

/// A TLS acceptor for `source`, and the certificate chain's PEM when it was made here.
pub(crate) fn acceptor(source: &Source<'_>) -> Result<(TlsAcceptor, Option<String>), BoxError> {
    let (chain, key, pem) = match source {
        Source::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading the certificate {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("no certificate in {}", cert.display()).into());
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
            (chain, key, None)
        }
        Source::SelfSigned => {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let made = rcgen::generate_simple_self_signed(names)?;
            let pem = made.cert.pem();
            let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
            (vec![made.cert.der().clone()], key, Some(pem))
        }
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), pem))
}
