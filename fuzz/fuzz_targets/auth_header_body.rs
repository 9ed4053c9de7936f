// The body of the `auth_header` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// The token the fuzzed node accepts.
const TOKEN: &str = "fuzz-token";

/// One authenticator for every input: its token file is written once.
fn authenticator() -> &'static poh_node::ingress::auth::Authenticator {
    static AUTH: std::sync::OnceLock<(tempfile::TempDir, poh_node::ingress::auth::Authenticator)> =
        std::sync::OnceLock::new();
    &AUTH
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let file = dir.path().join("tokens");
            std::fs::write(&file, format!("{TOKEN}\n")).expect("the token file");
            let config = poh_node::config::AuthConfig {
                token_file: Some(file),
                ..poh_node::config::AuthConfig::default()
            };
            let auth = poh_node::ingress::auth::Authenticator::from_config(&config)
                .expect("an authenticator");
            (dir, auth)
        })
        .1
}

/// Check the input as an `Authorization` header value, and as the user name and password of
/// `Basic`; never panic. Only the token gets in: as a bearer, or as Basic's password under any
/// user name (one without a colon, which would end it).
fn one_input(data: &[u8]) {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let auth = authenticator();
    let _ = auth.check(Some(data));
    let user: Vec<u8> = data.iter().copied().filter(|&b| b != b':').collect();
    let basic = |user: &[u8], password: &[u8]| {
        let mut pair = user.to_vec();
        pair.push(b':');
        pair.extend_from_slice(password);
        format!("Basic {}", STANDARD.encode(pair)).into_bytes()
    };
    assert!(auth.check(Some(&basic(&user, TOKEN.as_bytes()))).is_ok());
    let guessed = auth.check(Some(&basic(b"operator", data)));
    assert_eq!(guessed.is_ok(), data == TOKEN.as_bytes(), "{data:?}");
}
