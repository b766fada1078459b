//! `churn tls dev-ca`: a certificate authority, a server certificate and client certificates for
//! trying TLS and mutual TLS on a laptop or a test network. Not for production: the CA's key
//! lies in a plain file next to the certificates it signs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// How long the certificates are valid: a year, then run the command again with `--force`.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The names every server certificate holds, so a server on this machine can be reached by them.
pub const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    #[command(subcommand)]
    pub action: TlsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum TlsAction {
    /// Writes a development CA (ca.pem, ca-key.pem), a server certificate signed by it
    /// (server.pem, server-key.pem) and a client certificate per --client (NAME.pem,
    /// NAME-key.pem). For development only.
    DevCa(DevCaArgs),
}

#[derive(Debug, clap::Args)]
pub struct DevCaArgs {
    /// Folder to write the files to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Another name or IP address the server certificate holds, besides localhost, 127.0.0.1
    /// and ::1 (repeatable).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// A client certificate whose subject common name is this caller name, for mutual TLS
    /// (repeatable).
    #[arg(long = "client")]
    pub clients: Vec<String>,
    /// Replace files already there.
    #[arg(long)]
    pub force: bool,
}

/// Runs `churn tls`: the files written go to `out`, one line each, and the warning to `notes`.
pub fn tls(
    args: TlsArgs,
    out: &mut impl std::io::Write,
    notes: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match args.action {
        TlsAction::DevCa(args) => {
            let written = dev_ca(&args)?;
            for file in &written {
                writeln!(out, "wrote {}", file.display())?;
            }
            writeln!(
                notes,
                "warning: a development CA, for trying TLS only: its key is a plain file \
                 beside the certificates, and anyone holding it can impersonate the server \
                 or any caller. Use your organisation's CA in production. Valid for {} days.",
                VALIDITY.as_secs() / 86_400
            )?;
        }
    }
    Ok(())
}

/// One PEM file to write: its name in the output folder, its text, and whether it is a key.
struct PemFile {
    name: String,
    text: String,
    private: bool,
}

/// Generates the CA and certificates of `args` and writes them; returns the files written.
/// Nothing is written when a file is already there (unless `force`), or a name is unusable.
pub fn dev_ca(args: &DevCaArgs) -> anyhow::Result<Vec<PathBuf>> {
    for client in &args.clients {
        churn_serve::auth::credentials::check_caller_name(client)
            .map_err(anyhow::Error::msg)
            .context("a client certificate names a caller")?;
    }
    let files = generate(&args.hosts, &args.clients)?;
    // `--client server`, `--client ca-key` or a name given twice would write a file twice.
    let mut names = std::collections::BTreeSet::new();
    if let Some(twice) = files.iter().find(|file| !names.insert(file.name.as_str())) {
        bail!(
            "`{}` would be written twice: give each --client once, and not a name of the CA \
             or server files",
            twice.name
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create `{}`", args.out.display()))?;
    if !args.force {
        let existing: Vec<String> = files
            .iter()
            .map(|file| args.out.join(&file.name))
            .filter(|path| path.exists())
            .map(|path| format!("`{}`", path.display()))
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already there; nothing written (--force replaces them)",
                existing.join(", ")
            );
        }
    }
    let mut written = Vec::with_capacity(files.len());
    for file in &files {
        let path = args.out.join(&file.name);
        write_pem(&path, &file.text, file.private)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Generates the CA, the server certificate for the local names and `hosts`, and a client
/// certificate per name of `clients`, all signed by the CA, as PEM files to write.
fn generate(hosts: &[String], clients: &[String]) -> anyhow::Result<Vec<PemFile>> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = common_name("churn development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca_params, since_epoch);
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
        .context("cannot sign the CA certificate")?;

    let mut files = vec![
        PemFile {
            name: "ca.pem".into(),
            text: ca.pem(),
            private: false,
        },
        PemFile {
            name: "ca-key.pem".into(),
            text: ca_key_pem,
            private: true,
        },
    ];

    let mut server_params = CertificateParams::default();
    server_params.distinguished_name = common_name("churn development server");
    for host in LOCAL_HOSTS
        .iter()
        .copied()
        .chain(hosts.iter().map(String::as_str))
    {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                // rcgen takes any ASCII; a client would never match a name with a space.
                let not_a_name = || {
                    format!(
                        "--host `{}` is not a DNS name or IP address",
                        host.escape_default()
                    )
                };
                rustls_pki_types::DnsName::try_from(host)
                    .map_err(|_| anyhow::anyhow!(not_a_name()))?;
                SanType::DnsName(host.to_string().try_into().with_context(not_a_name)?)
            }
        };
        if !server_params.subject_alt_names.contains(&name) {
            server_params.subject_alt_names.push(name);
        }
    }
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    files.extend(leaf("server", server_params, &ca, since_epoch)?);

    for client in clients {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(client);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        files.extend(leaf(client, params, &ca, since_epoch)?);
    }
    Ok(files)
}

/// Signs a certificate of `params` with a new key, and returns `NAME.pem` and `NAME-key.pem`.
fn leaf(
    name: &str,
    mut params: CertificateParams,
    ca: &CertifiedIssuer<'_, KeyPair>,
    since_epoch: Duration,
) -> anyhow::Result<[PemFile; 2]> {
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, since_epoch);
    let key =
        KeyPair::generate().with_context(|| format!("cannot generate the key of `{name}`"))?;
    let certificate = params
        .signed_by(&key, ca)
        .with_context(|| format!("cannot sign the certificate of `{name}`"))?;
    Ok([
        PemFile {
            name: format!("{name}.pem"),
            text: certificate.pem(),
            private: false,
        },
        PemFile {
            name: format!("{name}-key.pem"),
            text: key.serialize_pem(),
            private: true,
        },
    ])
}

/// Makes a certificate valid from an hour ago (clocks differ a little) for [`VALIDITY`].
fn set_validity(params: &mut CertificateParams, since_epoch: Duration) {
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - Duration::from_secs(60 * 60);
    params.not_after = now + VALIDITY;
}

/// Writes a PEM file; a key is readable by its owner only (0600 on unix). A file already there
/// (the caller allowed replacing it) is removed first, so a key never keeps an older, wider
/// mode.
fn write_pem(path: &Path, text: &str, private: bool) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    use super::*;

    fn certificate(files: &[PemFile], name: &str) -> CertificateDer<'static> {
        let file = files.iter().find(|file| file.name == name).unwrap();
        CertificateDer::from_pem_slice(file.text.as_bytes()).unwrap()
    }

    #[test]
    fn the_server_and_client_certificates_chain_to_the_ca() {
        let files = generate(
            &["churn.internal".into(), "10.0.0.5".into()],
            &["crm".into()],
        )
        .unwrap();
        let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca-key.pem",
                "server.pem",
                "server-key.pem",
                "crm.pem",
                "crm-key.pem"
            ]
        );
        for file in &files {
            assert_eq!(file.private, file.name.ends_with("-key.pem"));
            if file.private {
                PrivateKeyDer::from_pem_slice(file.text.as_bytes()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate(&files, "ca.pem")).unwrap();
        let roots = Arc::new(roots);
        let now = UnixTime::now();

        let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server = certificate(&files, "server.pem");
        for name in [
            "localhost",
            "127.0.0.1",
            "::1",
            "churn.internal",
            "10.0.0.5",
        ] {
            let name = ServerName::try_from(name).unwrap();
            server_verifier
                .verify_server_cert(&server, &[], &name, &[], now)
                .unwrap();
        }
        let other = ServerName::try_from("other.example").unwrap();
        assert!(
            server_verifier
                .verify_server_cert(&server, &[], &other, &[], now)
                .is_err()
        );

        let client_verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .unwrap();
        client_verifier
            .verify_client_cert(&certificate(&files, "crm.pem"), &[], now)
            .unwrap();
        // The server's certificate is not one a client may present (extended key usage).
        assert!(
            client_verifier
                .verify_client_cert(&server, &[], now)
                .is_err()
        );
    }

    #[test]
    fn unusable_names_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        for clients in [
            vec!["a b".to_string()],
            vec!["server".into()],
            vec!["ca-key".into()],
            vec!["x".into(), "x".into()],
        ] {
            let args = DevCaArgs {
                out: out.clone(),
                hosts: Vec::new(),
                clients,
                force: false,
            };
            assert!(dev_ca(&args).is_err());
        }
        let args = DevCaArgs {
            out: out.clone(),
            hosts: vec!["not a host".into()],
            clients: Vec::new(),
            force: false,
        };
        let error = dev_ca(&args).unwrap_err();
        assert!(
            format!("{error:#}").contains("--host `not a host`"),
            "{error:#}"
        );
        assert!(!out.exists());
    }
}
