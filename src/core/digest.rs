//! Digests computed while a body streams through: the byte count, MD5 (the
//! ETag S3 clients expect) unless the caller has another ETag, plus
//! whichever `x-amz-checksum-*` algorithms the client asked for. The
//! front-end compares them with what the client declared before anything
//! is committed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures::Stream;
use md5::{Digest, Md5};

use crate::core::blob::ByteStream;

/// The additional checksum algorithms S3 clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name S3 uses (`x-amz-checksum-algorithm` values).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Self::Crc64Nvme(h) => h.write(data),
            Self::Sha1(h) => Digest::update(h, data),
            Self::Sha256(h) => Digest::update(h, data),
        }
    }

    fn finish(self) -> (ChecksumAlgorithm, String) {
        let engine = base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => (
                ChecksumAlgorithm::Crc32,
                engine.encode(h.finalize().to_be_bytes()),
            ),
            Self::Crc32c(crc) => (ChecksumAlgorithm::Crc32c, engine.encode(crc.to_be_bytes())),
            Self::Crc64Nvme(h) => (
                ChecksumAlgorithm::Crc64Nvme,
                engine.encode(h.sum64().to_be_bytes()),
            ),
            Self::Sha1(h) => (ChecksumAlgorithm::Sha1, engine.encode(h.finalize())),
            Self::Sha256(h) => (ChecksumAlgorithm::Sha256, engine.encode(h.finalize())),
        }
    }
}

/// What was measured over a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigests {
    pub size: u64,
    /// `None` when the caller did not ask for MD5.
    pub md5: Option<[u8; 16]>,
    /// Base64 values, as S3 headers carry them.
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

impl BodyDigests {
    /// The object's ETag: its MD5 when computed, else its SHA-256 (as for
    /// pool files, whose receipts carry the SHA-256 anyway).
    pub fn etag_hex(&self) -> String {
        match self.md5 {
            Some(md5) => hex::encode(md5),
            None => self.sha256_hex().unwrap_or_default(),
        }
    }

    /// The SHA-256 in hex, when it was computed.
    pub fn sha256_hex(&self) -> Option<String> {
        self.checksum(ChecksumAlgorithm::Sha256)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .map(hex::encode)
    }

    pub fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<&str> {
        self.checksums
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    size: u64,
    md5: Option<Md5>,
    extra: Vec<Hasher>,
}

/// Why a body stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    TooLarge,
    Read(String),
}

struct Shared {
    state: Option<State>,
    failure: Option<BodyFailure>,
}

/// Shared view of the digests of a [`DigestingStream`].
#[derive(Clone)]
pub struct DigestHandle(Arc<Mutex<Shared>>);

impl DigestHandle {
    /// Set when the body itself failed (as opposed to the storage it went to).
    pub fn failure(&self) -> Option<BodyFailure> {
        self.0.lock().ok().and_then(|s| s.failure.clone())
    }

    /// The digests of everything that passed through. Call once, after the
    /// stream has ended.
    pub fn finish(&self) -> BodyDigests {
        let state = self.0.lock().ok().and_then(|mut s| s.state.take());
        match state {
            Some(state) => BodyDigests {
                size: state.size,
                md5: state.md5.map(|m| m.finalize().into()),
                checksums: state.extra.into_iter().map(Hasher::finish).collect(),
            },
            None => BodyDigests {
                size: 0,
                md5: Some(Md5::digest(b"").into()),
                checksums: Vec::new(),
            },
        }
    }
}

/// Passes a body through, hashing it and refusing more than `limit` bytes.
pub struct DigestingStream {
    inner: ByteStream,
    state: DigestHandle,
    limit: u64,
}

impl DigestingStream {
    pub fn new(
        inner: ByteStream,
        md5: bool,
        algorithms: &[ChecksumAlgorithm],
        limit: u64,
    ) -> (Self, DigestHandle) {
        let state = DigestHandle(Arc::new(Mutex::new(Shared {
            state: Some(State {
                size: 0,
                md5: md5.then(Md5::new),
                extra: algorithms.iter().map(|a| Hasher::new(*a)).collect(),
            }),
            failure: None,
        })));
        (
            Self {
                inner,
                state: state.clone(),
                limit,
            },
            state,
        )
    }
}

impl Stream for DigestingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let Ok(mut guard) = self.state.0.lock() else {
            return Poll::Ready(Some(Err(std::io::Error::other("digest state poisoned"))));
        };
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(state) = guard.state.as_mut() {
                    state.size += chunk.len() as u64;
                    if state.size > self.limit {
                        guard.failure = Some(BodyFailure::TooLarge);
                        return Poll::Ready(Some(Err(std::io::Error::other("body too large"))));
                    }
                    if let Some(md5) = state.md5.as_mut() {
                        md5.update(chunk);
                    }
                    for hasher in &mut state.extra {
                        hasher.update(chunk);
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => guard.failure = Some(BodyFailure::Read(e.to_string())),
            _ => {}
        }
        drop(guard);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn digests_match_known_values() {
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ]));
        let (mut stream, handle) = DigestingStream::new(body, true, &ChecksumAlgorithm::ALL, 100);
        while stream.next().await.is_some() {}
        let d = handle.finish();
        assert_eq!(d.size, 11);
        assert_eq!(d.etag_hex(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(d.checksum(ChecksumAlgorithm::Crc32), Some("DUoRhQ=="));
        assert_eq!(
            d.checksum(ChecksumAlgorithm::Sha256),
            Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
        );
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        let body: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(
            b"12345",
        ))]));
        let (mut stream, _) = DigestingStream::new(body, true, &[], 4);
        let first = stream.next().await.expect("an item");
        assert!(first.is_err());
    }
}
