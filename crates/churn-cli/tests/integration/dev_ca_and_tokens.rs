//! `churn tls dev-ca` and `churn token` as processes: the files they write are what rustls and
//! the server read, the token goes to stdout alone, and secrets are readable by their owner only.

use std::path::Path;
use std::process::{Command, Output};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn churn(args: &[&str], dir: &Path) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_churn"))
        .current_dir(dir)
        .args(args)
        .env_remove("CHURN_CREDENTIALS")
        .output()?)
}

fn succeeded(output: &Output) -> anyhow::Result<String> {
    anyhow::ensure!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout.clone())?)
}

#[cfg(unix)]
fn mode(path: &Path) -> anyhow::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn common_name(der: &CertificateDer<'_>) -> anyhow::Result<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)?;
    let name = certificate
        .subject()
        .iter_common_name()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no common name"))?
        .as_str()?
        .to_string();
    Ok(name)
}

#[test]
fn dev_ca_writes_certificates_rustls_reads_and_refuses_to_overwrite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let output = churn(
        &[
            "tls",
            "dev-ca",
            "--out",
            "tls",
            "--host",
            "churn.internal",
            "--client",
            "crm",
        ],
        dir.path(),
    )?;
    let listed = succeeded(&output)?;
    let warning = String::from_utf8_lossy(&output.stderr);
    assert!(warning.contains("development"), "{warning}");
    let tls = dir.path().join("tls");
    for name in [
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
        "crm.pem",
        "crm-key.pem",
    ] {
        assert!(listed.contains(name), "{name} not in {listed}");
        assert!(tls.join(name).is_file(), "{name} not written");
    }
    let ca = CertificateDer::from_pem_file(tls.join("ca.pem"))?;
    let server_chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls.join("server.pem"))?.collect::<Result<_, _>>()?;
    let server_key = PrivateKeyDer::from_pem_file(tls.join("server-key.pem"))?;
    let client = CertificateDer::from_pem_file(tls.join("crm.pem"))?;
    PrivateKeyDer::from_pem_file(tls.join("crm-key.pem"))?;
    assert_eq!(common_name(&client)?, "crm");

    // A server configuration as `churn serve` would build one: the key must match the
    // certificate, and client certificates are checked against the CA.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(server_chain, server_key)?;
    rustls::server::danger::ClientCertVerifier::verify_client_cert(
        verifier.as_ref(),
        &client,
        &[],
        rustls_pki_types::UnixTime::now(),
    )?;

    #[cfg(unix)]
    for (name, expected) in [
        ("ca-key.pem", 0o600),
        ("server-key.pem", 0o600),
        ("crm-key.pem", 0o600),
    ] {
        assert_eq!(mode(&tls.join(name))?, expected, "{name}");
    }

    let before = std::fs::read(tls.join("ca-key.pem"))?;
    let again = churn(&["tls", "dev-ca", "--out", "tls"], dir.path())?;
    assert!(!again.status.success());
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert!(
        refusal.contains("already there") && refusal.contains("--force"),
        "{refusal}"
    );
    assert_eq!(std::fs::read(tls.join("ca-key.pem"))?, before);
    succeeded(&churn(
        &["tls", "dev-ca", "--out", "tls", "--force"],
        dir.path(),
    )?)?;
    assert_ne!(std::fs::read(tls.join("ca-key.pem"))?, before);
    Ok(())
}

#[test]
fn token_add_prints_the_token_whose_hash_the_file_keeps() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The default file, in the working folder.
    let output = churn(
        &["token", "add", "--name", "crm", "--role", "scorer"],
        dir.path(),
    )?;
    let stdout = succeeded(&output)?;
    let token = stdout.strip_suffix('\n').unwrap_or(&stdout);
    assert!(
        token.starts_with("churn_") && token.len() == 70 && !token.contains('\n'),
        "stdout holds more than the token: {stdout:?}"
    );
    let file = dir.path().join("churn-credentials.toml");
    let text = std::fs::read_to_string(&file)?;
    assert!(!text.contains(token));
    let hash = churn_serve::auth::credentials::token_sha256(token);
    assert!(text.contains(&hash), "{text}");
    let credentials = churn_serve::auth::Credentials::read(&file).map_err(anyhow::Error::msg)?;
    assert_eq!(
        credentials.by_token(token).map(|caller| caller.name()),
        Some("crm")
    );
    #[cfg(unix)]
    assert_eq!(mode(&file)?, 0o600);

    // CHURN_CREDENTIALS names another file.
    let other = dir.path().join("other.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_churn"))
        .current_dir(dir.path())
        .args([
            "token", "add", "--name", "ops", "--role", "admin", "--role", "agent",
        ])
        .env("CHURN_CREDENTIALS", &other)
        .output()?;
    succeeded(&output)?;
    assert!(std::fs::read_to_string(&other)?.contains("name = \"ops\""));

    let duplicate = churn(
        &["token", "add", "--name", "crm", "--role", "agent"],
        dir.path(),
    )?;
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("churn token revoke crm"));

    let list = succeeded(&churn(&["token", "list"], dir.path())?)?;
    assert_eq!(list, "crm  scorer  (token)\n");
    assert!(!list.contains(&hash));

    succeeded(&churn(&["token", "revoke", "crm"], dir.path())?)?;
    let credentials = churn_serve::auth::Credentials::read(&file).map_err(anyhow::Error::msg)?;
    assert!(credentials.by_token(token).is_none());
    let unknown = churn(&["token", "revoke", "crm"], dir.path())?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no caller `crm`"));
    Ok(())
}
