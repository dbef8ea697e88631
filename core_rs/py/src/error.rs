//! The one place where Rust errors become Python exceptions.
//!
//! The exception classes are defined in Python (`tfnode/errors.py`) so that users catch
//! tfnode's own types; Rust only imports them.
use pyo3::PyErr;

pyo3::import_exception!(tfnode.errors, InvalidKey);
pyo3::import_exception!(tfnode.errors, InvalidSignature);
pyo3::import_exception!(tfnode.errors, DecryptionError);
pyo3::import_exception!(tfnode.errors, MerkleError);
pyo3::import_exception!(tfnode.errors, CryptoError);
pyo3::import_exception!(tfnode.errors, LedgerError);
pyo3::import_exception!(tfnode.errors, ConsensusError);

/// Newtype so that `?` converts core errors into the right Python exception.
pub struct CoreError(PyErr);

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        e.0
    }
}

impl From<tfnode_sm2::Error> for CoreError {
    fn from(e: tfnode_sm2::Error) -> Self {
        use tfnode_sm2::Error as E;
        let msg = e.to_string();
        CoreError(match e {
            E::SignatureLength(_) | E::SignatureR | E::SignatureS | E::Der(_) => InvalidSignature::new_err(msg),
            E::EmptyPlaintext => CryptoError::new_err(msg),
            E::CiphertextLength(_) | E::CiphertextPrefix(_) | E::CiphertextPoint | E::DecryptionFailed => DecryptionError::new_err(msg),
            E::PublicKeyLength(_) | E::PublicKeyPrefix(_) | E::CoordinateRange | E::NotOnCurve | E::SecretKeyLength(_) | E::SecretKeyRange => {
                InvalidKey::new_err(msg)
            }
        })
    }
}

impl From<tfnode_merkle::MerkleError> for CoreError {
    fn from(e: tfnode_merkle::MerkleError) -> Self {
        CoreError(MerkleError::new_err(e.to_string()))
    }
}

impl From<tfnode_sm4::Error> for CoreError {
    fn from(e: tfnode_sm4::Error) -> Self {
        use tfnode_sm4::Error as E;
        let msg = e.to_string();
        CoreError(match e {
            E::KeyLength(_) => InvalidKey::new_err(msg),
            E::NonceLength(_) | E::TooLong(_) | E::OutputLength { .. } => CryptoError::new_err(msg),
            E::TooShort(_) | E::Authentication => DecryptionError::new_err(msg),
        })
    }
}
