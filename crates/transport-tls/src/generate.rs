//! Development certificates (rcgen, ECDSA P-256): a self-signed server
//! certificate, or a small dev CA that issues server and client
//! certificates for mutual-TLS setups and tests. Not for production PKI.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use crate::error::TlsError;
use crate::pin::CertPin;

/// When a generated certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before this.
    pub not_before: SystemTime,
    /// Not valid after this.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (tolerates clock skew) for `days` days.
    pub fn days(days: u64) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - Duration::from_hours(1),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }
}

impl Default for Validity {
    /// One year.
    fn default() -> Self {
        Self::days(365)
    }
}

/// A generated certificate and its private key.
#[derive(Clone)]
pub struct GeneratedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("spki_pin", &self.spki_pin())
            .finish_non_exhaustive()
    }
}

impl GeneratedCert {
    /// The SPKI pin of the certificate, for clients that pin it.
    pub fn spki_pin(&self) -> Option<CertPin> {
        CertPin::spki_of(&self.cert_der).ok()
    }

    /// Writes the certificate (mode 0644) and the key (mode 0600, owner only).
    ///
    /// # Errors
    /// [`TlsError::File`] naming the file that could not be written.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
        write_file(cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_file(key_path, self.key_pem.as_bytes(), 0o600)
    }
}

/// Writes `data` to `path` with `mode` (Unix), also when the file existed
/// with a looser mode.
pub(crate) fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let err = |source| TlsError::File {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options.open(path).map_err(err)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(data).map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path).map_err(err)?;
        file.write_all(data).map_err(err)
    }
}

fn leaf_params(
    common_name: &str,
    subject_alt_names: &[String],
    validity: Validity,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(subject_alt_names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn finish(cert: &rcgen::Certificate, key: &KeyPair) -> GeneratedCert {
    GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
    }
}

/// Generates a self-signed server certificate for `subject_alt_names` (DNS
/// names or IP addresses, e.g. `["localhost", "127.0.0.1"]`), valid for a
/// year, and writes it to `cert_path` and its key to `key_path` (0600).
/// Clients trust it by using `cert_path` as their CA file, or by its pin.
///
/// # Errors
/// [`TlsError::Generate`] for invalid names; [`TlsError::File`].
pub fn generate_self_signed(
    common_name: &str,
    subject_alt_names: &[String],
    cert_path: &Path,
    key_path: &Path,
) -> Result<GeneratedCert, TlsError> {
    let generated = self_signed(common_name, subject_alt_names, Validity::default())?;
    generated.write(cert_path, key_path)?;
    Ok(generated)
}

/// A self-signed server certificate, in memory (see [`generate_self_signed`]).
///
/// # Errors
/// [`TlsError::Generate`] for invalid names.
pub fn self_signed(
    common_name: &str,
    subject_alt_names: &[String],
    validity: Validity,
) -> Result<GeneratedCert, TlsError> {
    let key = KeyPair::generate()?;
    let params = leaf_params(
        common_name,
        subject_alt_names,
        validity,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let cert = params.self_signed(&key)?;
    Ok(finish(&cert, &key))
}

/// A development certificate authority, held in memory.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert: GeneratedCert,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new CA named `common_name`, valid for ten years.
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days(3650);
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        let cert = params.self_signed(&key)?;
        let generated = finish(&cert, &key);
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert: generated,
        })
    }

    /// The CA certificate (give its PEM to clients and servers as the CA
    /// file) and key.
    pub fn certificate(&self) -> &GeneratedCert {
        &self.cert
    }

    /// Issues a server certificate for `subject_alt_names`.
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub fn issue_server(
        &self,
        subject_alt_names: &[String],
        validity: Validity,
    ) -> Result<GeneratedCert, TlsError> {
        let cn = subject_alt_names
            .first()
            .map_or("netproto server", String::as_str);
        self.issue(
            cn,
            subject_alt_names,
            validity,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// Issues a client certificate for mutual TLS, named `common_name`.
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub fn issue_client(
        &self,
        common_name: &str,
        validity: Validity,
    ) -> Result<GeneratedCert, TlsError> {
        self.issue(
            common_name,
            &[],
            validity,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        subject_alt_names: &[String],
        validity: Validity,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<GeneratedCert, TlsError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(common_name, subject_alt_names, validity, usage)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(finish(&cert, &key))
    }
}
