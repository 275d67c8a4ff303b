//! Contribution rules: what a pool accepts from a member. A file's group
//! is the window of its timestamp; it is refused (with a stable reason and
//! a message, and a `contribution.refused` event for the member) when its
//! name is bad, its timestamp lies ahead, its group no longer takes files,
//! it is larger than the pool allows, empty, or of a type the pool does
//! not take (detected from its bytes, never its name). A file sent again
//! gets its first receipt.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;

use super::{pool_object, rfc3339, sha256_of, window_of};
use crate::core::blob::ByteStream;
use crate::core::digest::ChecksumAlgorithm;
use crate::core::meta::MutationOutcome;
use crate::core::meta::pools::{NewContribution, PoolMutation, PoolOutcome};
use crate::core::objects::{IncomingBody, StoredBody};
use crate::core::{CoreError, CoreResult, Store, now_ms};
use crate::model::{
    ContributionRecord, GroupRecord, GroupState, MemberRecord, MemberRole, PoolError, PoolEvent,
    PoolEventKind, PoolRecord, RefusalReason,
};

/// How far in the future a client timestamp may be (clocks drift).
const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Bytes looked at to detect a file's type.
const SNIFF_LEN: usize = 8192;

/// What a file sent to a pool became.
#[derive(Debug, Clone)]
pub enum Receipt {
    Accepted(ContributionRecord),
    /// Sent before: the first receipt's contribution.
    Duplicate(ContributionRecord),
    /// Not stored; `code` is stable, `message` explains.
    Refused {
        code: RefusalReason,
        message: String,
    },
}

/// The content type of a file, from its first bytes.
pub fn detect_type(head: &[u8]) -> String {
    if head.starts_with(b"#!") {
        return "application/x-shellscript".into();
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().into();
    }
    // Text when the head is UTF-8, allowing a character cut at its end.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() >= SNIFF_LEN,
    };
    if text && !head.contains(&0) {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

fn type_matches(pattern: &str, mime: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(family) => mime.split('/').next() == Some(family),
        None => pattern == mime,
    }
}

fn type_allowed(pool: &PoolRecord, mime: &str) -> bool {
    !pool.forbidden_types.iter().any(|p| type_matches(p, mime))
        && (pool.allowed_types.is_empty()
            || pool.allowed_types.iter().any(|p| type_matches(p, mime)))
}

/// Counts a body's bytes and keeps its first ones, refusing it once it
/// grows past the pool's limit.
#[derive(Default)]
struct BodyWatch {
    head: Vec<u8>,
    len: u64,
    too_large: bool,
}

fn watched(stream: ByteStream, limit: u64, watch: Arc<Mutex<BodyWatch>>) -> ByteStream {
    Box::pin(stream.map(move |chunk| {
        let chunk: Bytes = chunk?;
        let mut w = watch
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        w.len += chunk.len() as u64;
        if w.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - w.head.len()).min(chunk.len());
            w.head.extend_from_slice(&chunk[..take]);
        }
        if w.len > limit {
            w.too_large = true;
            return Err(std::io::Error::other(
                "the file is larger than the pool allows",
            ));
        }
        Ok(chunk)
    }))
}

impl Store {
    /// Stores one file from a member. Rule violations become a refused
    /// receipt (and a `contribution.refused` event for the member); only
    /// failures of the server itself are errors.
    pub async fn contribute(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: i64,
        stream: ByteStream,
    ) -> CoreResult<Receipt> {
        let receipt = self
            .contribute_file(pool, member, name, client_time_ms, stream)
            .await?;
        if let Receipt::Refused { code, message } = &receipt {
            self.record_refusal(pool, member, name, Some(client_time_ms), *code, message)
                .await?;
        }
        Ok(receipt)
    }

    /// Tells a member, through its events, that a file was refused.
    pub async fn record_refusal(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: Option<i64>,
        code: RefusalReason,
        message: &str,
    ) -> CoreResult<()> {
        let event = PoolEvent {
            id: 0,
            pool_id: pool.id.clone(),
            member_id: Some(member.id.clone()),
            kind: PoolEventKind::ContributionRefused,
            group_start_ms: None,
            data: serde_json::json!({
                "member": member.name,
                "name": name,
                "timestamp": client_time_ms.map(rfc3339),
                "reason": code,
                "message": message,
            })
            .to_string(),
            time_ms: now_ms(),
        };
        self.apply_pool(PoolMutation::Event(Box::new(event)))
            .await?;
        self.pool_events.notify_waiters();
        Ok(())
    }

    async fn contribute_file(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: i64,
        stream: ByteStream,
    ) -> CoreResult<Receipt> {
        let refused = |code, message: String| Ok(Receipt::Refused { code, message });
        if member.role != MemberRole::Contributor {
            return Err(CoreError::AccessDenied);
        }
        if name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\0']) {
            return refused(
                RefusalReason::BadName,
                "a file name has 1 to 255 bytes and no slashes".into(),
            );
        }
        let now = now_ms();
        if client_time_ms > now + FUTURE_TOLERANCE_MS {
            return refused(
                RefusalReason::InFuture,
                "the timestamp is more than 5 minutes in the future".into(),
            );
        }
        let (start_ms, end_ms) = window_of(pool, client_time_ms);
        let seal_at_ms = end_ms + pool.grace_secs * 1000;
        if seal_at_ms <= now {
            return refused(
                RefusalReason::Sealed,
                format!("the group of {} is already sealed", rfc3339(start_ms)),
            );
        }
        let Some((stored, head, size)) = self.store_pool_file(pool, stream).await? else {
            return refused(
                RefusalReason::TooLarge,
                format!(
                    "the pool accepts files of at most {} bytes",
                    pool.max_file_size
                ),
            );
        };
        let content_type = detect_type(&head);
        let refusal = if size == 0 && !pool.allow_empty {
            Some((
                RefusalReason::Empty,
                "the pool does not accept empty files".to_owned(),
            ))
        } else if !type_allowed(pool, &content_type) {
            Some((
                RefusalReason::ForbiddenType,
                format!("the pool does not accept {content_type}"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.discard(&stored.body).await;
            return refused(code, message);
        }
        let sha256 = sha256_of(&stored)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let object_key = format!("groups/{}/{}/{id}-{name}", rfc3339(start_ms), member.name);
        let contribution = ContributionRecord {
            id: id.clone(),
            pool_id: pool.id.clone(),
            member_id: member.id.clone(),
            group_start_ms: start_ms,
            client_time_ms,
            name: name.to_owned(),
            size: size as i64,
            sha256: sha256.clone(),
            content_type: content_type.clone(),
            object_key: object_key.clone(),
            created_ms: now,
        };
        let object = pool_object(pool, object_key, &stored, content_type.clone(), now);
        let event = PoolEvent {
            id: 0,
            pool_id: pool.id.clone(),
            member_id: Some(member.id.clone()),
            kind: PoolEventKind::ContributionAccepted,
            group_start_ms: Some(start_ms),
            data: serde_json::json!({
                "contribution": id,
                "member": member.name,
                "name": name,
                "size": size,
                "sha256": sha256,
                "group": rfc3339(start_ms),
            })
            .to_string(),
            time_ms: now,
        };
        let group = GroupRecord {
            pool_id: pool.id.clone(),
            start_ms,
            end_ms,
            seal_at_ms,
            state: GroupState::Open,
            files: 0,
            bytes: 0,
            attempts: 0,
            lease_id: None,
            lease_member: None,
            lease_expires_ms: None,
            result_key: None,
            result_size: None,
            result_etag: None,
            updated_ms: now,
        };
        let outcome = self
            .apply_pool(PoolMutation::Contribute(Box::new(NewContribution {
                object,
                contribution,
                group,
                event,
            })))
            .await;
        match outcome {
            Ok(MutationOutcome::Pool(PoolOutcome::Contributed(c))) => {
                self.pool_events.notify_waiters();
                Ok(Receipt::Accepted(*c))
            }
            Ok(MutationOutcome::Pool(PoolOutcome::Duplicate(c))) => {
                self.discard(&stored.body).await;
                Ok(Receipt::Duplicate(*c))
            }
            Ok(_) => Err(CoreError::Internal("unexpected outcome".into())),
            Err(e) if e.is_refusal() => {
                self.discard(&stored.body).await;
                match CoreError::from(e) {
                    e @ CoreError::Pool(PoolError::GroupNotOpen(_)) => {
                        refused(RefusalReason::Sealed, e.to_string())
                    }
                    e @ CoreError::QuotaExceeded { .. } => {
                        refused(RefusalReason::QuotaExceeded, e.to_string())
                    }
                    other => Err(other),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a pool file (a contribution or a result) with its SHA-256;
    /// answers it with its first bytes and size, or `None` when it grew
    /// past the pool's limit (nothing is kept then).
    pub(super) async fn store_pool_file(
        &self,
        pool: &PoolRecord,
        stream: ByteStream,
    ) -> CoreResult<Option<(StoredBody, Vec<u8>, u64)>> {
        let watch = Arc::new(Mutex::new(BodyWatch::default()));
        let body = IncomingBody {
            stream: watched(stream, pool.max_file_size as u64, watch.clone()),
            declared_len: None,
            md5: false,
            checksums: vec![ChecksumAlgorithm::Sha256],
            verify: Box::new(|_| Ok(())),
        };
        match self.store_body(body, true).await {
            Ok(stored) => {
                let (head, size) = watch
                    .lock()
                    .map(|w| (w.head.clone(), w.len))
                    .unwrap_or_default();
                Ok(Some((stored, head, size)))
            }
            Err(_) if watch.lock().is_ok_and(|w| w.too_large) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pools::tests::pool;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(detect_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(detect_type(&elf), "application/x-executable");
        assert_eq!(
            detect_type(b"#!/bin/sh\necho hi\n"),
            "application/x-shellscript"
        );
        assert_eq!(detect_type("plain text, ünïcode".as_bytes()), "text/plain");
        assert_eq!(detect_type(&[0, 159, 146, 150]), "application/octet-stream");
        let p = pool(60);
        assert!(type_allowed(&p, "image/png"));
        assert!(!type_allowed(&p, "application/x-executable"));
        let only_images = PoolRecord {
            allowed_types: vec!["image/*".into()],
            ..p
        };
        assert!(type_allowed(&only_images, "image/jpeg"));
        assert!(!type_allowed(&only_images, "text/plain"));
    }
}
