/// Errors of the Merkle crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} out of range for tree of {size} leaves")]
    IndexOutOfRange { index: usize, size: usize },
}
