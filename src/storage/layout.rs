//! What a committed blob is made of: one object, or parts read in order ([`BlobLayout`]), and the chunks
//! an upload received ([`Chunk`]), with the text form both are recorded in by metadata.

use super::{ObjectKey, StorageError};

/// Where a committed blob's bytes are: one object, or several parts read in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLayout {
    /// The object itself, or the folder of the parts.
    pub key: ObjectKey,
    /// The parts in order, each an object name below `key` and its size; empty when `key` is one object.
    pub parts: Vec<Chunk>,
}

impl BlobLayout {
    /// The parts as stored in metadata, `name:size,...` (`None` for a single object).
    pub fn parts_text(&self) -> Option<String> {
        (!self.parts.is_empty()).then(|| Chunk::encode_list(&self.parts))
    }

    pub fn from_stored(key: String, parts: Option<&str>) -> Result<Self, StorageError> {
        let parts = parts.map(Chunk::decode_list).transpose()?.unwrap_or_default();
        Ok(BlobLayout {
            key: ObjectKey::stored(key),
            parts,
        })
    }

    /// The objects holding the blob, in order.
    pub(super) fn objects(&self) -> Vec<ObjectKey> {
        if self.parts.is_empty() {
            vec![self.key.clone()]
        } else {
            self.parts.iter().map(|p| self.key.child(&p.name)).collect()
        }
    }
}

/// A received chunk of an upload: its name ([`ObjectKey::chunk_name`]) and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub name: String,
    pub size: u64,
}

impl Chunk {
    /// Encodes chunks as `name:size,name:size` for metadata.
    pub fn encode_list(chunks: &[Chunk]) -> String {
        chunks
            .iter()
            .map(|c| format!("{}:{}", c.name, c.size))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn decode_list(text: &str) -> Result<Vec<Chunk>, StorageError> {
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|item| {
                let bad = || StorageError::Layout(format!("bad chunk entry {item:?}"));
                let (name, size) = item.rsplit_once(':').ok_or_else(bad)?;
                let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !valid_name {
                    return Err(bad());
                }
                Ok(Chunk {
                    name: name.to_owned(),
                    size: size.parse().map_err(|_| bad())?,
                })
            })
            .collect()
    }
}
