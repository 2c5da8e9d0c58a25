//! A throw-away self-signed certificate for `localhost` and `127.0.0.1` (rcgen), made fresh
//! for each test that serves TLS.

/// `(certificate PEM, private key PEM)`.
pub(crate) fn throwaway_cert() -> (String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
    (key.cert.pem(), key.key_pair.serialize_pem())
}
