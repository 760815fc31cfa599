//! Where things are stored: every object key inside a registry's store, and each registry store's own
//! folder or location, is built here and nowhere else. Stored data is found by these names, so they
//! never change (a test pins each).
//!
//! Inside a registry's store:
//! - `uploads/<id>/<chunk name>`: one object per received chunk of an upload session (a fresh name per
//!   request, so two racing requests never write the same object); on local files
//!   `uploads/<id>.<chunk name>`, all in one folder: making and removing a folder per upload cost as much
//!   CPU as hashing a 1 MiB blob (ext4 inode allocation);
//! - `blobs/<alg>/<2 hex>/<hex>.<id>`: a committed blob made of one chunk of upload `id` (the chunk
//!   object is renamed here), or the empty blob; named after the upload as well as the digest, so a name
//!   is never used twice and deleting a collected blob's object can never remove a later commit of the
//!   same digest (`blobs/<alg>/<2 hex>/<hex>`, without the upload, in data stored before);
//! - `blobs/<alg>/<2 hex>/<hex>.parts/<id>/<index:08>`: a committed blob made of several chunks, which are
//!   renamed, never concatenated.

use std::fmt;
use std::path::PathBuf;

use object_store::path::Path;

use crate::oci::digest::Digest;
use crate::oci::route::UploadId;

/// The folder of upload chunks.
const UPLOADS: &str = "uploads";

/// The key of an object, or of a folder of objects, inside a registry's store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(Path);

impl ObjectKey {
    /// `blobs/<alg>/<2 hex>/<hex>`: where the objects of blob `digest` are named from.
    fn blob_stem(digest: &Digest) -> String {
        let hex = digest.hex();
        format!("blobs/{}/{}/{}", digest.algorithm().name(), &hex[..2], hex)
    }

    /// `blobs/<alg>/<2 hex>/<hex>.<id>`: blob `digest` as one object, committed by upload `id`.
    pub fn blob(digest: &Digest, id: &UploadId) -> Self {
        Self::from_text(format!("{}.{id}", Self::blob_stem(digest)))
    }

    /// `blobs/<alg>/<2 hex>/<hex>.parts/<id>`: the folder the chunks of upload `id` are renamed into as
    /// the parts of blob `digest`.
    pub fn blob_parts(digest: &Digest, id: &UploadId) -> Self {
        Self::from_text(format!("{}.parts/{id}", Self::blob_stem(digest)))
    }

    /// The name of part `index` of a blob whose chunks were renamed into parts: `<index:08>`.
    pub fn part_name(index: usize) -> String {
        format!("{index:08}")
    }

    /// `uploads/<id>`: the folder of upload `id`'s chunks on an object store.
    pub fn upload(id: &UploadId) -> Self {
        Self::from_text(format!("{UPLOADS}/{id}"))
    }

    /// `<index:08>-<random>`: the name of a new chunk of an upload, which sorts by `index` and is unique
    /// to the request writing it.
    pub fn chunk_name(index: usize) -> String {
        format!("{index:08}-{}", uuid::Uuid::new_v4().simple())
    }

    /// `uploads/<id>/<name>`: chunk `name` of upload `id` on an object store.
    pub fn chunk(id: &UploadId, name: &str) -> Self {
        Self::upload(id).child(name)
    }

    /// `uploads/<id>.<name>`: chunk `name` of upload `id` on local files, where all uploads share the
    /// folder [`ObjectKey::local_uploads`].
    pub fn local_chunk(id: &UploadId, name: &str) -> Self {
        Self::from_text(format!("{UPLOADS}/{id}.{name}"))
    }

    /// `uploads`: the folder of every upload's chunks on local files.
    pub fn local_uploads() -> Self {
        Self::from_text(UPLOADS.to_owned())
    }

    /// The chunk name of file `file_name` in [`ObjectKey::local_uploads`] if it is a chunk of upload `id`.
    pub fn local_chunk_name<'a>(id: &UploadId, file_name: &'a str) -> Option<&'a str> {
        file_name.strip_prefix(id.as_str())?.strip_prefix('.')
    }

    /// `<self>/<name>`: object `name` in the folder `self` (a part of a blob stored in parts).
    pub fn child(&self, name: &str) -> Self {
        Self::from_text(format!("{self}/{name}"))
    }

    /// The names metadata knows this object by, if it knows it at all: the key itself (a blob stored as
    /// one object), its folder (a blob stored in parts) and the upload that wrote it (a chunk, or a blob
    /// whose commit is not recorded yet), for each naming scheme above.
    pub fn known_by(&self) -> Vec<&str> {
        let text = self.as_str();
        let mut names = vec![text];
        if let Some((folder, _)) = text.rsplit_once('/') {
            names.push(folder);
        }
        let upload = match text.strip_prefix("uploads/") {
            Some(rest) => rest.split(['.', '/']).next(),
            None => match text.split_once(".parts/") {
                Some((_, rest)) => rest.split('/').next(),
                None => text
                    .rsplit('/')
                    .next()
                    .and_then(|file| file.split_once('.'))
                    .map(|(_, id)| id),
            },
        };
        names.extend(upload.filter(|id| !id.is_empty()));
        names
    }

    /// A key as recorded in metadata (one of the above, written by an earlier commit).
    pub fn stored(text: String) -> Self {
        Self::from_text(text)
    }

    /// A key as an object store listed it.
    pub(super) fn listed(path: Path) -> Self {
        ObjectKey(path)
    }

    fn from_text(text: String) -> Self {
        ObjectKey(Path::from(text))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The key as object_store names objects.
    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn into_path(self) -> Path {
        self.0
    }

    /// The file of this object in the local store `root`.
    pub(super) fn file_in(&self, root: &std::path::Path) -> PathBuf {
        root.join(self.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<data>/registries/<name lowercased>`: the folder of registry `name`'s store in the data folder.
pub fn registry_folder(data_dir: &std::path::Path, name: &str) -> PathBuf {
    data_dir.join("registries").join(name.to_ascii_lowercase())
}

/// `<default>/<name lowercased>`: the location of registry `name`'s store below the default location
/// `default` (a URL without its trailing slash).
pub fn registry_location(default: &str, name: &str) -> String {
    format!("{default}/{}", name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    #[test]
    fn keys_keep_the_stored_layout() {
        let digest = Digest::of(Algorithm::Sha256, b"hello world");
        let hex = digest.hex();
        let id: UploadId = "0b6c1a5e-5d8f-4c4e-9a53-6f3f2d2b8e11".parse().unwrap();
        let chunk = "00000002-5f1c";
        let cases = [
            (ObjectKey::blob(&digest, &id), format!("blobs/sha256/b9/{hex}.{id}")),
            (
                ObjectKey::blob_parts(&digest, &id),
                format!("blobs/sha256/b9/{hex}.parts/{id}"),
            ),
            (
                ObjectKey::blob_parts(&digest, &id).child(&ObjectKey::part_name(3)),
                format!("blobs/sha256/b9/{hex}.parts/{id}/00000003"),
            ),
            (ObjectKey::upload(&id), format!("uploads/{id}")),
            (ObjectKey::chunk(&id, chunk), format!("uploads/{id}/{chunk}")),
            (ObjectKey::local_chunk(&id, chunk), format!("uploads/{id}.{chunk}")),
            (ObjectKey::local_uploads(), "uploads".to_owned()),
            (ObjectKey::stored("blobs/x/y".into()), "blobs/x/y".to_owned()),
        ];
        for (key, text) in cases {
            assert_eq!(key.as_str(), text);
            assert_eq!(key.path(), &Path::from(text.as_str()));
        }
        let name = ObjectKey::chunk_name(12);
        let (index, random) = name.split_once('-').unwrap();
        assert_eq!(index, "00000012");
        assert!(random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(ObjectKey::chunk_name(12), name, "unique to the request");
        let file = ObjectKey::local_chunk(&id, chunk);
        let file_name = file.as_str().strip_prefix("uploads/").unwrap();
        assert_eq!(ObjectKey::local_chunk_name(&id, file_name), Some(chunk));
        assert_eq!(ObjectKey::local_chunk_name(&id, chunk), None);
        assert_eq!(
            registry_folder(std::path::Path::new("/data"), "MyReg1"),
            PathBuf::from("/data/registries/myreg1")
        );
        assert_eq!(registry_location("s3://b", "MyReg1"), "s3://b/myreg1");
    }

    /// Every object a commit or an upload writes is known by the upload that wrote it, and a part by its
    /// blob's folder; a blob stored before uploads named their objects only by its own key.
    #[test]
    fn objects_are_known_by_their_key_folder_and_upload() {
        let digest = Digest::of(Algorithm::Sha256, b"x");
        let id: UploadId = "u-1".parse().unwrap();
        let stem = format!("blobs/sha256/{}/{}", &digest.hex()[..2], digest.hex());
        let one = ObjectKey::blob(&digest, &id);
        assert_eq!(one.known_by(), [one.as_str(), &stem[..stem.rfind('/').unwrap()], "u-1"]);
        let part = ObjectKey::blob_parts(&digest, &id).child("00000001");
        assert_eq!(part.known_by(), [part.as_str(), &format!("{stem}.parts/u-1"), "u-1"]);
        let chunk = ObjectKey::chunk(&id, "00000000-ab");
        assert_eq!(chunk.known_by(), [chunk.as_str(), "uploads/u-1", "u-1"]);
        let local = ObjectKey::local_chunk(&id, "00000000-ab");
        assert_eq!(local.known_by(), [local.as_str(), "uploads", "u-1"]);
        let legacy = ObjectKey::stored(stem.clone());
        assert_eq!(legacy.known_by().len(), 2, "its key and folder: no upload");
    }
}
