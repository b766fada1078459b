//! A client channel to a `churn serve`: plain on loopback, or TLS (mutual TLS with a client
//! certificate) with a bearer token sent on every call.
//!
//! ```no_run
//! # async fn example() -> churn_api::Result<()> {
//! use churn_api::client::{BearerToken, ConnectOptions, TlsOptions, connect_with};
//! use churn_api::proto::churn_service_client::ChurnServiceClient;
//!
//! let options = ConnectOptions {
//!     tls: Some(TlsOptions::with_ca("dev-ca/ca.pem".into())),
//!     token: Some(BearerToken::new("churn_…")?),
//! };
//! let channel = connect_with("churn.example.com:50051", &options).await?;
//! let mut scoring = ChurnServiceClient::new(channel);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{ApiError, Result};

/// Connects to the server at `addr` (a URL such as `http://127.0.0.1:50051`), without TLS or a
/// token.
pub async fn connect(addr: &str) -> Result<Channel> {
    Endpoint::from_shared(addr.to_string())
        .map_err(|error| ApiError::connect(addr, error))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|error| ApiError::connect(addr, error))
}

/// A channel that sends the bearer token of its [`ConnectOptions`] on every call; the generated
/// clients take it as they take a [`Channel`].
pub type AuthorizedChannel = InterceptedService<Channel, Authorization>;

/// Connects to the server at `addr` as `options` say: `https://host:port`, or `host:port` with
/// TLS settings, speaks TLS; `http://host:port`, or `host:port` without, does not.
pub async fn connect_with(addr: &str, options: &ConnectOptions) -> Result<AuthorizedChannel> {
    let target = Target::resolve(addr, options)?;
    let mut endpoint = Endpoint::from_shared(target.url.clone())
        .map_err(|error| ApiError::connect(addr, error))?
        .tcp_nodelay(true);
    if let Some(tls) = &target.tls {
        endpoint = endpoint
            .tls_config(tls.tonic_config())
            .map_err(|error| ApiError::connect(addr, error))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| ApiError::connect(addr, transport_reason(&error)))?;
    Ok(InterceptedService::new(
        channel,
        Authorization::new(options.token.as_ref())?,
    ))
}

/// Returns the transport error with its causes: tonic's own text ("transport error") hides why a
/// TLS handshake failed.
fn transport_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// How to reach a server: TLS, and the token to send.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// TLS settings; `None` for a plain connection.
    pub tls: Option<TlsOptions>,
    /// The token sent as `authorization: Bearer …` on every call.
    pub token: Option<BearerToken>,
}

/// The files and name a TLS connection is checked with.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA certificates (PEM) the server's certificate must be signed by.
    pub ca: PathBuf,
    /// The client certificate (PEM, the chain up to the CA) for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate must hold, when it is not the address's host.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// TLS checked against the CA certificates in `ca`, no client certificate.
    pub fn with_ca(ca: PathBuf) -> Self {
        TlsOptions {
            ca,
            ..TlsOptions::default()
        }
    }
}

/// A caller's bearer token. Its `Debug` does not show it, so it stays out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    header_value: String,
}

impl BearerToken {
    /// Takes a token, without the surrounding white space a file or variable may hold.
    pub fn new(token: &str) -> Result<Self> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::InvalidToken {
                reason: "the token is empty".into(),
            });
        }
        // What may go in an HTTP header, and what `churn token add` prints.
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ApiError::InvalidToken {
                reason: "the token holds characters other than visible ASCII".into(),
            });
        }
        Ok(BearerToken {
            header_value: format!("Bearer {token}"),
        })
    }

    /// Returns the value of the `authorization` header: `Bearer ` and the token.
    pub fn header_value(&self) -> &str {
        &self.header_value
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BearerToken(…)")
    }
}

/// Adds `authorization: Bearer …` to every call, when there is a token.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    value: Option<MetadataValue<Ascii>>,
}

impl Authorization {
    /// Sends `token` on every call; `None` sends nothing.
    pub fn new(token: Option<&BearerToken>) -> Result<Self> {
        let value = match token {
            Some(token) => {
                let mut value: MetadataValue<Ascii> =
                    token
                        .header_value()
                        .parse()
                        .map_err(|_| ApiError::InvalidToken {
                            reason: "the token is not a valid header value".into(),
                        })?;
                // HTTP/2 then never keeps it in a header compression table.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Authorization { value })
    }
}

impl Interceptor for Authorization {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A server address resolved against [`ConnectOptions`]: its URL with the scheme it will be
/// spoken with, and the TLS files read and checked.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://host:port` or `http://host:port`.
    pub url: String,
    /// `host:port`, to open a TCP connection to.
    pub authority: String,
    /// The TLS settings, read; `None` for a plain connection.
    pub tls: Option<ClientTls>,
}

impl Target {
    /// Resolves `addr` (`https://host:port`, `http://host:port` or `host:port`) and reads the
    /// TLS files of `options`. An `https://` address needs TLS settings (no system CA list is
    /// built in), and an `http://` one refuses them.
    pub fn resolve(addr: &str, options: &ConnectOptions) -> Result<Target> {
        let addr = addr.trim().trim_end_matches('/');
        let (scheme, rest) = match addr.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, addr),
        };
        let tls_wanted = match (scheme.as_deref(), &options.tls) {
            (Some("https"), Some(_)) | (None, Some(_)) => true,
            (Some("http"), None) | (None, None) => false,
            (Some("https"), None) => {
                return Err(ApiError::TlsSetting {
                    reason: format!(
                        "`{addr}` asks for TLS: give the CA file the server's certificate is \
                         checked against (`--tls-ca`)"
                    ),
                });
            }
            (Some("http"), Some(_)) => {
                return Err(ApiError::TlsSetting {
                    reason: format!(
                        "`{addr}` is a plain-text address but TLS files are given: write \
                         `https://{rest}` or `{rest}`"
                    ),
                });
            }
            (Some(other), _) => {
                return Err(ApiError::connect(
                    addr,
                    format!("unknown scheme `{other}` (http or https)"),
                ));
            }
        };
        if rest.is_empty() || rest.contains('/') {
            return Err(ApiError::connect(addr, "expected host:port"));
        }
        let host = host_of(rest);
        let tls = match (&options.tls, tls_wanted) {
            (Some(tls), true) => Some(ClientTls::read(tls, host)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Target {
            url: format!("{scheme}://{rest}"),
            authority: rest.to_string(),
            tls,
        })
    }
}

/// Returns the host of `host:port`, without the brackets of an IPv6 address.
fn host_of(authority: &str) -> &str {
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    match authority.rsplit_once(':') {
        Some((host, _port)) => host,
        None => authority,
    }
}

/// TLS files read and checked: the CA certificates, the client certificate and key, and the
/// name the server's certificate must hold.
#[derive(Clone)]
pub struct ClientTls {
    ca_file: PathBuf,
    ca_pem: Vec<u8>,
    ca_certificates: Vec<CertificateDer<'static>>,
    identity: Option<ClientIdentity>,
    server_name: ServerName<'static>,
}

#[derive(Clone)]
struct ClientIdentity {
    certificate_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    key_file: PathBuf,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClientTls")
            .field("ca_certificates", &self.ca_certificates.len())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClientTls {
    /// Reads the files of `options`; the server's certificate must name `host` unless
    /// `options.server_name` says otherwise. Errors name the file at fault.
    pub fn read(options: &TlsOptions, host: &str) -> Result<ClientTls> {
        let ca_pem = read_file(&options.ca)?;
        let ca_certificates = certificates(&options.ca, &ca_pem)?;
        let identity = match (&options.client_certificate, &options.client_key) {
            (None, None) => None,
            (Some(certificate_file), Some(key_file)) => {
                let certificate_pem = read_file(certificate_file)?;
                let chain = certificates(certificate_file, &certificate_pem)?;
                let key_pem = read_file(key_file)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|error| ApiError::tls_file(key_file, pem_reason(error)))?;
                Some(ClientIdentity {
                    certificate_pem,
                    key_pem,
                    chain,
                    key: Arc::new(key),
                    key_file: key_file.clone(),
                })
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ApiError::TlsSetting {
                    reason: "mutual TLS needs both the client certificate and its key".into(),
                });
            }
        };
        let name = options.server_name.as_deref().unwrap_or(host);
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|_| ApiError::TlsSetting {
                reason: format!(
                    "`{}` is not a DNS name or IP address a certificate can hold",
                    name.escape_default()
                ),
            })?;
        let tls = ClientTls {
            ca_file: options.ca.clone(),
            ca_pem,
            ca_certificates,
            identity,
            server_name,
        };
        // Builds the configuration once, so a CA file that is no CA or a key that does not
        // match its certificate is reported here, naming the file.
        tls.rustls_config()?;
        Ok(tls)
    }

    /// Returns the name the server's certificate must hold.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Returns a rustls client configuration speaking HTTP/2 (ALPN `h2`), for a client that
    /// opens its TLS connections itself.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for (index, certificate) in self.ca_certificates.iter().enumerate() {
            roots.add(certificate.clone()).map_err(|error| {
                ApiError::tls_file(
                    &self.ca_file,
                    format!("certificate {} is not a usable CA: {error}", index + 1),
                )
            })?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| ApiError::TlsSetting {
            reason: error.to_string(),
        })?
        .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|error| ApiError::tls_file(&identity.key_file, error))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn tonic_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(self.server_name.to_str().into_owned());
        if let Some(identity) = &self.identity {
            config = config.identity(Identity::from_pem(
                &identity.certificate_pem,
                &identity.key_pem,
            ));
        }
        config
    }
}

fn read_file(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(|error| ApiError::tls_file(file, error))
}

/// Returns the certificates of a PEM file; none is an error.
fn certificates(file: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| ApiError::tls_file(file, pem_reason(error)))?;
    if certificates.is_empty() {
        return Err(ApiError::tls_file(file, "no PEM certificate in it"));
    }
    Ok(certificates)
}

fn pem_reason(error: rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
        other => format!("not valid PEM: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(addr: &str, tls: bool) -> Result<(String, bool)> {
        // Only the scheme logic: TLS files that do not exist fail later, so this checks the
        // decision up to reading them.
        let options = ConnectOptions {
            tls: tls.then(|| TlsOptions::with_ca("/nonexistent/ca.pem".into())),
            token: None,
        };
        match Target::resolve(addr, &options) {
            Ok(target) => Ok((target.url, target.tls.is_some())),
            Err(ApiError::TlsFile { .. }) => Ok((String::new(), true)),
            Err(error) => Err(error),
        }
    }

    #[test]
    fn the_scheme_follows_the_address_and_the_tls_settings() {
        assert_eq!(
            resolve("127.0.0.1:50051", false).unwrap(),
            ("http://127.0.0.1:50051".to_string(), false)
        );
        assert_eq!(
            resolve("http://127.0.0.1:50051/", false).unwrap(),
            ("http://127.0.0.1:50051".to_string(), false)
        );
        assert!(resolve("127.0.0.1:50051", true).unwrap().1);
        assert!(resolve("https://churn.example.com:50051", true).unwrap().1);
        let error = resolve("https://churn.example.com:50051", false).unwrap_err();
        assert!(error.to_string().contains("--tls-ca"), "{error}");
        let error = resolve("http://churn.example.com:50051", true).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("https://churn.example.com:50051"),
            "{error}"
        );
        assert!(resolve("ftp://h:1", false).is_err());
    }

    #[test]
    fn hosts_lose_their_port_and_brackets() {
        assert_eq!(host_of("localhost:50051"), "localhost");
        assert_eq!(host_of("[::1]:50051"), "::1");
        assert_eq!(host_of("churn.example.com"), "churn.example.com");
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let options = ConnectOptions {
            tls: Some(TlsOptions::with_ca("/nonexistent/ca.pem".into())),
            token: None,
        };
        let error = Target::resolve("localhost:1", &options).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn tokens_are_sent_as_bearer_and_never_shown() {
        let token = BearerToken::new("  churn_abc\n").unwrap();
        assert_eq!(token.header_value(), "Bearer churn_abc");
        assert!(!format!("{token:?}").contains("abc"));
        let mut authorization = Authorization::new(Some(&token)).unwrap();
        let request = authorization.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer churn_abc"
        );
        let mut none = Authorization::new(None).unwrap();
        let request = none.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(BearerToken::new(" \n").is_err());
        assert!(BearerToken::new("churn_a b").is_err());
        assert!(BearerToken::new("churn_\u{e9}").is_err());
    }
}
