//! What the grammar refuses: one variant per kind of malformed input, carrying the message the client is
//! told. `errors::OciError` maps each to its spec error code once; nothing here knows codes or statuses.

/// Input the OCI grammar does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// Not a digest, or one of an algorithm Berth does not support.
    #[error("{0}")]
    Digest(String),
    /// Not a repository name, or a path naming no endpoint.
    #[error("{0}")]
    Name(String),
    /// Not a tag, or a manifest document that breaks the spec.
    #[error("{0}")]
    Manifest(String),
    /// A manifest document over the size limit.
    #[error("manifest is larger than the {0} byte limit")]
    ManifestTooLarge(usize),
    /// A reference to read or delete that is no reference: it names no manifest.
    #[error("{0}")]
    NoSuchManifest(String),
    /// An upload id that is not one Berth issues: it names no upload.
    #[error("blob upload unknown to registry")]
    NoSuchUpload,
    /// A `Range` no part of a blob of `size` bytes satisfies.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// A `Content-Range` of an upload chunk that is not one.
    #[error("{0}")]
    ContentRange(String),
}

#[cfg(test)]
impl GrammarError {
    /// The variant's name, for tables of expected refusals.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            GrammarError::Digest(_) => "Digest",
            GrammarError::Name(_) => "Name",
            GrammarError::Manifest(_) => "Manifest",
            GrammarError::ManifestTooLarge(_) => "ManifestTooLarge",
            GrammarError::NoSuchManifest(_) => "NoSuchManifest",
            GrammarError::NoSuchUpload => "NoSuchUpload",
            GrammarError::RangeNotSatisfiable { .. } => "RangeNotSatisfiable",
            GrammarError::ContentRange(_) => "ContentRange",
        }
    }
}
