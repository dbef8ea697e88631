/// Errors of the Merkle crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} out of range for tree of {size} leaves")]
    IndexOutOfRange { index: usize, size: usize },
    #[error("a history tree of {size} leaves has one peak per set bit of its size, got {got}")]
    Peaks { size: u64, got: usize },
    #[error("an audit path needs {want} stored nodes, got {got}")]
    Nodes { want: usize, got: usize },
}
