//! The crate's error type, and how TLS handshake failures are reported to
//! the connection layer ([`TransportError::Tls`]).

use std::path::PathBuf;

use netproto_transport::{TlsFailure, TransportError};
use rustls::{AlertDescription, CertificateError, InvalidMessage};

/// Setting TLS up went wrong: files, PEM contents, settings, certificate
/// generation. Failures of a handshake are [`TransportError::Tls`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable of the expected kind.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (no certificate, no private key, bad PEM).
        reason: String,
    },
    /// rustls refused the settings (for example a key that does not match
    /// the certificate, or an empty CA list).
    #[error("TLS settings refused: {0}")]
    Settings(String),
    /// A certificate pin does not parse.
    #[error("bad certificate pin {input:?}: {reason}")]
    BadPin {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A server name is neither a DNS name nor an IP address.
    #[error("bad TLS server name {0:?}")]
    BadServerName(String),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(String),
    /// Binding or using the listening socket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Settings(e.to_string())
    }
}

impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e.to_string())
    }
}

/// Sorts a rustls error into the failure a caller can act on.
pub(crate) fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            // Only our pin check reports this one.
            CertificateError::ApplicationVerificationFailure => TlsFailure::PinMismatch,
            _ => TlsFailure::BadCertificate,
        },
        E::NoCertificatesPresented => TlsFailure::ClientCertRequired,
        E::AlertReceived(a) => match *a {
            AlertDescription::CertificateRequired => TlsFailure::ClientCertRequired,
            AlertDescription::UnknownCA => TlsFailure::UnknownCa,
            AlertDescription::CertificateExpired => TlsFailure::Expired,
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied => TlsFailure::BadCertificate,
            AlertDescription::ProtocolVersion
            | AlertDescription::HandshakeFailure
            | AlertDescription::NoApplicationProtocol
            | AlertDescription::InsufficientSecurity => TlsFailure::NoCommonProtocol,
            _ => TlsFailure::Other,
        },
        E::NoApplicationProtocol | E::PeerIncompatible(_) => TlsFailure::NoCommonProtocol,
        E::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => TlsFailure::NotTls,
        _ => TlsFailure::Other,
    }
}

/// Turns an I/O error from a TLS handshake into the connection error.
pub(crate) fn handshake_error(e: std::io::Error) -> TransportError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return TransportError::Tls {
            reason: classify(tls),
            detail: tls.to_string(),
        };
    }
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return TransportError::Tls {
            reason: TlsFailure::Other,
            detail: "the peer closed the connection during the TLS handshake \
                     (it may not speak TLS, or refused us)"
                .into(),
        };
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_failures() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                TlsFailure::UnknownCa,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                TlsFailure::Expired,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                TlsFailure::NameMismatch,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
                TlsFailure::PinMismatch,
            ),
            (
                rustls::Error::NoCertificatesPresented,
                TlsFailure::ClientCertRequired,
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                TlsFailure::ClientCertRequired,
            ),
            (
                rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType),
                TlsFailure::NotTls,
            ),
            (
                rustls::Error::NoApplicationProtocol,
                TlsFailure::NoCommonProtocol,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(classify(&e), want, "{e}");
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            assert!(
                matches!(handshake_error(io), TransportError::Tls { reason, .. } if reason == want)
            );
        }
    }
}
