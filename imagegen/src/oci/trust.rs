//! Which TLS servers a push trusts, as Docker does: the system roots, the CA certificates given
//! for the registry (`--ca-file`, `/etc/docker/certs.d/<host:port>/*.crt`), and a self-signed
//! server certificate given there, accepted for that registry alone when the server presents
//! exactly that certificate (the handshake signature is still checked against it).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result, read};

/// The certificates the user gave for one registry, read from PEM files.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    certificates: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Reads every certificate of the PEM files `paths`.
    pub fn from_files(paths: &[std::path::PathBuf]) -> Result<Trust> {
        let mut certificates = Vec::new();
        for path in paths {
            let data = read(path)?;
            let found: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
                .collect::<std::result::Result<_, _>>()
                .unwrap_or_default();
            if found.is_empty() {
                return Err(Error::input(
                    path,
                    "is not a PEM certificate",
                    "pass the registry's CA certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                ));
            }
            certificates.extend(found);
        }
        Ok(Trust { certificates })
    }

    /// A rustls client configuration trusting the system roots and these certificates.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for cert in &self.certificates {
            // A certificate that cannot be a root (e.g. an unusual self-signed one) is still
            // accepted as the pinned server certificate below.
            let _ = roots.add(cert.clone());
        }
        let tls = |e: rustls::Error| Error::Usage(format!("cannot set up TLS ({e})"));
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Usage(format!("cannot set up TLS ({e})")))?,
            )
        };
        let verifier = Arc::new(PinnedVerifier {
            webpki,
            pinned: self.certificates.clone(),
            provider: provider.clone(),
        });
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

/// Checks server certificates against the roots, except that a server certificate equal byte for
/// byte to one the user gave is accepted as it is.
#[derive(Debug)]
struct PinnedVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
