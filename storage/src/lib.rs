//! The files that workers write and servers serve (exports, training checkpoints) live in one
//! object store, so that every process of a deployment reaches them the same way: a local
//! folder by default, or an S3-compatible bucket that several hosts share
//! (`PAIRWISE_STORAGE=s3://bucket/prefix`, credentials from the usual `AWS_*` variables).
//! Keys are relative paths such as `exports/<id>/train.jsonl`.

use std::path::Path;
use std::sync::Arc;

pub use bytes::Bytes;

use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage location {0:?}: {1}")]
    Location(String, String),
    #[error("no file {0} in the storage")]
    Missing(String),
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("{path}: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

fn local(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Local {
        path: path.display().to_string(),
        source,
    }
}

/// An object store and the prefix under which Pairwise's keys live. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Key,
    /// Where it is, for messages.
    location: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.location)
            .finish()
    }
}

impl Storage {
    /// A local folder (created if missing).
    pub fn folder(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
            root: Key::default(),
            location: dir.display().to_string(),
        })
    }

    /// `s3://bucket/prefix` (and the other schemes `object_store` knows), or a local folder
    /// given as a path or a `file://` URL.
    pub fn open(location: &str) -> Result<Self> {
        if !location.contains("://") {
            return Self::folder(Path::new(location));
        }
        let url = url::Url::parse(location)
            .map_err(|e| StorageError::Location(location.into(), e.to_string()))?;
        if url.scheme() == "file" {
            let dir = url
                .to_file_path()
                .map_err(|()| StorageError::Location(location.into(), "not a local path".into()))?;
            return Self::folder(&dir);
        }
        // Credentials and endpoints come from the environment (AWS_ACCESS_KEY_ID,
        // AWS_ENDPOINT for S3-compatible stores, ...).
        let options: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let (store, root) = object_store::parse_url_opts(&url, options)?;
        Ok(Self {
            store: Arc::from(store),
            root,
            location: location.into(),
        })
    }

    fn key(&self, key: &str) -> Key {
        self.root.parts().chain(Key::from(key).parts()).collect()
    }

    /// Copies every file of a local folder (not its subfolders) to `prefix/<name>`.
    pub async fn upload_dir(&self, dir: &Path, prefix: &str) -> Result<()> {
        let mut entries = tokio::fs::read_dir(dir).await.map_err(local(dir))?;
        while let Some(entry) = entries.next_entry().await.map_err(local(dir))? {
            let path = entry.path();
            if !entry.file_type().await.map_err(local(&path))?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            self.upload_file(&path, &format!("{prefix}/{name}")).await?;
        }
        Ok(())
    }

    /// Streams a local file to `key`, in parts, so large files need little memory.
    pub async fn upload_file(&self, path: &Path, key: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(path).await.map_err(local(path))?;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), self.key(key));
        let copied = match tokio::io::copy(&mut file, &mut writer).await {
            Ok(_) => writer.shutdown().await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            // Leaves no orphaned parts of a multipart upload behind in a bucket.
            if let Err(abort) = writer.abort().await {
                tracing::warn!("abandoning the upload of {key}: {abort}");
            }
            return Err(local(path)(e));
        }
        Ok(())
    }

    /// Copies every file under `prefix/` into a local folder (created if missing); returns
    /// how many.
    pub async fn download_dir(&self, prefix: &str, dir: &Path) -> Result<usize> {
        tokio::fs::create_dir_all(dir).await.map_err(local(dir))?;
        let base = self.key(prefix);
        let objects: Vec<_> = self.store.list(Some(&base)).try_collect().await?;
        for object in &objects {
            let Some(name) = object.location.filename() else {
                continue;
            };
            let target = dir.join(name);
            let mut file = tokio::fs::File::create(&target)
                .await
                .map_err(local(&target))?;
            let mut stream = self.store.get(&object.location).await?.into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?).await.map_err(local(&target))?;
            }
            file.flush().await.map_err(local(&target))?;
        }
        Ok(objects.len())
    }

    /// The files under `prefix/` (in subfolders too) with their sizes in bytes, by their path
    /// below `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let base = self.key(prefix);
        let objects: Vec<_> = self.store.list(Some(&base)).try_collect().await?;
        let mut files: Vec<(String, u64)> = objects
            .into_iter()
            .filter_map(|o| {
                let below: Vec<String> = o
                    .location
                    .prefix_match(&base)?
                    .map(|part| part.as_ref().to_string())
                    .collect();
                Some((below.join("/"), o.size))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Removes every file under `prefix/`; returns how many.
    pub async fn remove_dir(&self, prefix: &str) -> Result<usize> {
        let base = self.key(prefix);
        let objects: Vec<_> = self.store.list(Some(&base)).try_collect().await?;
        for object in &objects {
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(objects.len())
    }

    /// The bytes of `key`, as a stream.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static> {
        match self.store.get(&self.key(key)).await {
            Ok(found) => Ok(found.into_stream().map_err(StorageError::from)),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::Missing(key.into())),
            Err(e) => Err(e.into()),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_round_trips_through_the_store() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(&format!("file://{}", root.path().display())).unwrap();
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.jsonl"), b"{\"x\":1}\n").unwrap();
        let big: Vec<u8> = (0..(11 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(source.path().join("big.bin"), &big).unwrap();
        std::fs::create_dir(source.path().join("skipped")).unwrap();
        storage
            .upload_dir(source.path(), "exports/e1")
            .await
            .unwrap();
        assert!(root.path().join("exports/e1/big.bin").is_file());

        let copy = tempfile::tempdir().unwrap();
        let n = storage
            .download_dir("exports/e1", copy.path())
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(std::fs::read(copy.path().join("big.bin")).unwrap(), big);

        let bytes: Vec<bytes::Bytes> = storage
            .read("exports/e1/a.jsonl")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(bytes.concat(), b"{\"x\":1}\n");
        assert!(matches!(
            storage.read("exports/e1/none").await.err(),
            Some(StorageError::Missing(_))
        ));
        storage
            .upload_file(&source.path().join("a.jsonl"), "exports/e1/nested/a.jsonl")
            .await
            .unwrap();
        assert_eq!(
            storage.list("exports/e1").await.unwrap(),
            [
                ("a.jsonl".to_string(), 8),
                ("big.bin".to_string(), 11 << 20),
                ("nested/a.jsonl".to_string(), 8),
            ],
            "files below the prefix, by their path below it"
        );
    }

    #[test]
    fn bucket_locations_are_understood_and_bad_ones_refused() {
        assert!(Storage::open("s3://pairwise-data/prod").is_ok());
        assert!(Storage::open("nope://x").is_err());
    }
}
