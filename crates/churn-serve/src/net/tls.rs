//! TLS for both ports with rustls: the certificate and key from PEM files, an optional client CA
//! for mutual TLS, and a reload that swaps them for new handshakes while open connections keep
//! the session they have.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::ServeError;

/// The files TLS is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; `None`: no client
    /// certificates asked for.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.client_ca.as_deref());
        paths
    }

    /// The size and modification time of every file, to notice a change.
    fn signature(&self) -> FilesSignature {
        self.paths()
            .into_iter()
            .map(|path| {
                let metadata = std::fs::metadata(path).ok()?;
                Some((metadata.modified().ok()?, metadata.len()))
            })
            .collect()
    }
}

/// The size and modification time of each TLS file, `None` for one that cannot be read.
type FilesSignature = Vec<Option<(SystemTime, u64)>>;

/// The protocols a port speaks, offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// gRPC: HTTP/2 only.
    Grpc,
    /// The console and `/metrics`: HTTP/1.1.
    Http1,
}

/// The TLS settings of one port as last read; cheap to clone, shared by its accept loop and the
/// reloaders.
#[derive(Debug, Clone)]
pub struct Tls {
    files: TlsFiles,
    alpn: Alpn,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    signature: Arc<RwLock<FilesSignature>>,
}

impl Tls {
    /// Reads the files; the error names the file at fault.
    pub fn load(files: &TlsFiles, alpn: Alpn) -> Result<Self, ServeError> {
        let signature = files.signature();
        let config = server_config(files, alpn)?;
        Ok(Tls {
            files: files.clone(),
            alpn,
            current: Arc::new(RwLock::new(Arc::new(config))),
            signature: Arc::new(RwLock::new(signature)),
        })
    }

    /// Returns whether clients must show a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Reads the files again; on an error the certificate read before keeps serving.
    pub fn reload(&self) -> Result<(), ServeError> {
        let signature = self.files.signature();
        let config = server_config(&self.files, self.alpn)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
        *self
            .signature
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = signature;
        Ok(())
    }

    /// Reads the files again if one changed since the last read, logging the outcome. A file
    /// caught half-written is refused, and read again when its write ends and changes it again.
    pub fn reload_if_changed(&self) {
        let now = self.files.signature();
        let seen = self
            .signature
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if now == seen {
            return;
        }
        self.reload_logged("file change");
        *self
            .signature
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }

    /// Reads the files again, logging the outcome.
    pub fn reload_logged(&self, trigger: &'static str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.files.cert.display(),
                trigger,
                "TLS certificate read again; new connections use it"
            ),
            Err(error) => tracing::error!(
                %error,
                trigger,
                "TLS certificate refused; the one read before keeps serving"
            ),
        }
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::ConfigFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads the PEM certificates of a file, refusing a file with none.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certificates)
}

fn server_config(files: &TlsFiles, alpn: Alpn) -> Result<ServerConfig, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| {
        file_error(
            &files.key,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {error}"),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| file_error(&files.cert, error))?;
    let builder = match &files.client_ca {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in read_certificates(ca_file)? {
                roots
                    .add(certificate)
                    .map_err(|error| file_error(ca_file, error))?;
            }
            // Mandatory: a client without a certificate from this CA fails the handshake.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| file_error(ca_file, error))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|error| {
        file_error(
            &files.key,
            format!("does not match the certificate: {error}"),
        )
    })?;
    config.alpn_protocols = match alpn {
        Alpn::Grpc => vec![b"h2".to_vec()],
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// Returns the subject common name of a client's leaf certificate, which names the caller.
pub fn certificate_subject(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let common_name = parsed.subject().iter_common_name().next()?;
    common_name.as_str().ok().map(str::to_string)
}
