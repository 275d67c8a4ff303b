//! Who may talk to the S3 port: SigV4 secrets come from the access keys in
//! the metadata store, and every request is checked against the bucket's
//! owner, grants and public-read flag before its body is read. Anonymous
//! requests may only read public-read buckets.

use std::sync::{Arc, Mutex};

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::s3_error;

use s3s::path::S3Path;
use s3s::validation::NameValidation;

use super::error::to_s3;
use crate::core::accounts::Access;
use crate::core::names::BucketName;
use crate::core::{CoreError, Principal, Store};

pub struct KeyAuth {
    pub store: Store,
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.store.credentials(access_key).await.map_err(to_s3)? {
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// Lets every non-empty bucket name through s3s's path parsing, which
/// refuses bad ones with a bare `InvalidBucketName`. [`BucketPolicy`] checks
/// the name next, with a message that says what is wrong with it.
pub struct NamesCheckedLater;

impl NameValidation for NamesCheckedLater {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty()
    }
}

/// What the access check learned about a request (operation, caller,
/// bucket, key), for the HTTP layer's metrics, logs and audit record.
#[derive(Clone, Default)]
pub struct RequestFacts(pub Arc<Mutex<Facts>>);

#[derive(Default)]
pub struct Facts {
    pub operation: Option<String>,
    pub principal: Option<Principal>,
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// Decides each request before its body is read: the caller's key, its
/// limits, and the bucket's owner, grants and public-read flag.
pub struct BucketPolicy {
    pub store: Store,
}

/// What an S3 operation does to its bucket.
fn access_of(operation: &str) -> Access {
    match operation {
        "GetObject"
        | "HeadObject"
        | "ListObjects"
        | "ListObjectsV2"
        | "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "ListParts"
        | "ListMultipartUploads" => Access::Read,
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => Access::Write,
        _ => Access::Manage,
    }
}

/// The bucket named by an `x-amz-copy-source` header.
fn copy_source_bucket(headers: &http::HeaderMap) -> Option<String> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let path = decoded.trim_start_matches('/');
    Some(path.split('/').next().unwrap_or_default().to_owned())
}

const ANONYMOUS_REFUSED: &str = "Anonymous access is not allowed; sign the request";

/// Grace for a signer's clock running ahead of ours, as s3s allows for
/// SigV4 presigned URLs.
const CLOCK_SKEW_SECS: i64 = 15 * 60;

/// Presigned URLs may live seven days at most, as on S3, whatever their
/// signature version: SigV4 says for how long (`X-Amz-Expires`), SigV2
/// until when (`Expires`, Unix seconds). s3s checks only that they have not
/// expired yet.
fn presign_lifetime(uri: &http::Uri) -> S3Result<()> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let max = crate::core::presign::MAX_EXPIRY_SECS;
    let too_long = |message: String| {
        let mut error = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
            message,
        );
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        Err(error)
    };
    if let Some(secs) = param("X-Amz-Expires") {
        if secs.parse::<u64>().is_ok_and(|secs| secs <= max) {
            return Ok(());
        }
        return too_long(format!(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than {max} seconds"
        ));
    }
    if param("Signature").is_some()
        && let Some(expires) = param("Expires")
    {
        let now = crate::core::now_ms() / 1000;
        let lifetime = expires
            .parse::<i64>()
            .map_or(i64::MAX, |at| at.saturating_sub(now));
        if lifetime > max as i64 + CLOCK_SKEW_SECS {
            return too_long(format!(
                "Presigned URLs may live at most 7 days: Expires must be at most {max} seconds from now, but this URL expires {lifetime} seconds from now; sign it again with a shorter expiry"
            ));
        }
    }
    Ok(())
}

impl BucketPolicy {
    async fn allow(&self, who: Option<&Principal>, bucket: &str, access: Access) -> S3Result<()> {
        match self.store.authorize(who, bucket, access).await {
            // A missing bucket is the handler's to report.
            Ok(_) | Err(CoreError::NoSuchBucket) => Ok(()),
            Err(e) => Err(to_s3(e)),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for BucketPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_owned();
        let facts = cx.extensions_mut().get::<RequestFacts>().cloned();
        if let Some(facts) = &facts
            && let Ok(mut facts) = facts.0.lock()
        {
            facts.operation = Some(operation.clone());
            if let S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } = cx.s3_path() {
                facts.bucket = Some(bucket.to_string());
            }
            if let S3Path::Object { key, .. } = cx.s3_path() {
                facts.key = Some(key.to_string());
            }
        }
        presign_lifetime(cx.uri())?;
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        if let Some(bucket) = &bucket {
            BucketName::parse(bucket).map_err(to_s3)?;
        }
        // The signature was checked with this key's secret moments ago
        // (`get_secret_key`, in this request).
        let who = match cx.credentials() {
            Some(credentials) => match self
                .store
                .credentials_again(&credentials.access_key)
                .await
                .map_err(to_s3)?
            {
                Some((principal, _)) => Some(principal),
                None => return Err(s3_error!(AccessDenied, "The access key is no longer valid")),
            },
            None => None,
        };
        match (bucket, operation.as_str()) {
            (_, "ListBuckets") | (None, _) | (_, "CreateBucket") => {
                let Some(who) = &who else {
                    return Err(s3_error!(AccessDenied, "{ANONYMOUS_REFUSED}"));
                };
                if operation == "CreateBucket" && who.read_only {
                    return Err(s3_error!(AccessDenied, "This access key is read-only"));
                }
            }
            (Some(bucket), op) => {
                self.allow(who.as_ref(), &bucket, access_of(op)).await?;
                if matches!(op, "CopyObject" | "UploadPartCopy")
                    && let Some(source) = copy_source_bucket(cx.headers())
                {
                    self.allow(who.as_ref(), &source, Access::Read).await?;
                }
            }
        }
        if let Some(who) = who {
            if let Some(facts) = &facts
                && let Ok(mut facts) = facts.0.lock()
            {
                facts.principal = Some(who.clone());
            }
            cx.extensions_mut().insert(who);
        }
        Ok(())
    }
}

/// The principal behind a signed request, as the access check found it.
pub async fn principal<T>(store: &Store, req: &s3s::S3Request<T>) -> S3Result<Principal> {
    if let Some(found) = req.extensions.get::<Principal>() {
        return Ok(found.clone());
    }
    let Some(credentials) = &req.credentials else {
        return Err(s3_error!(AccessDenied, "{ANONYMOUS_REFUSED}"));
    };
    match store
        .credentials(&credentials.access_key)
        .await
        .map_err(to_s3)?
    {
        Some((principal, _)) => Ok(principal),
        None => Err(s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::{StoreLocation, StoreSettings};
    use crate::model::GrantLevel;

    /// Every operation on a bucket that Cistern serves (and some it does
    /// not), with the right it needs there.
    const OPERATIONS: &[(&str, Access)] = &[
        ("GetObject", Access::Read),
        ("HeadObject", Access::Read),
        ("ListObjects", Access::Read),
        ("ListObjectsV2", Access::Read),
        ("HeadBucket", Access::Read),
        ("GetBucketLocation", Access::Read),
        ("GetBucketVersioning", Access::Read),
        ("ListParts", Access::Read),
        ("ListMultipartUploads", Access::Read),
        ("PutObject", Access::Write),
        ("DeleteObject", Access::Write),
        ("DeleteObjects", Access::Write),
        ("CopyObject", Access::Write),
        ("CreateMultipartUpload", Access::Write),
        ("UploadPart", Access::Write),
        ("UploadPartCopy", Access::Write),
        ("CompleteMultipartUpload", Access::Write),
        ("AbortMultipartUpload", Access::Write),
        ("DeleteBucket", Access::Manage),
        // Not served, and refused to all but the owner before the handler
        // says so.
        ("PutBucketPolicy", Access::Manage),
        ("PutBucketAcl", Access::Manage),
        ("PutBucketVersioning", Access::Manage),
    ];

    #[test]
    fn each_operation_needs_its_right() {
        for &(operation, access) in OPERATIONS {
            assert_eq!(access_of(operation), access, "{operation}");
        }
    }

    /// Callers of a bucket, as the columns of the table below.
    const CALLERS: [&str; 7] = [
        "owner",
        "admin",
        "read grantee",
        "read-write grantee",
        "stranger",
        "anonymous",
        "owner's read-only key",
    ];

    /// Who may do an operation on a public-read bucket, by the right the
    /// operation needs (in the order of [`CALLERS`]).
    fn allowed_on_public_bucket(access: Access) -> [bool; 7] {
        match access {
            Access::Read => [true, true, true, true, true, true, true],
            Access::Write => [true, true, false, true, false, false, false],
            Access::Manage => [true, true, false, false, false, false, false],
        }
    }

    /// The caller that signs with `access_key`.
    async fn principal_of(store: &Store, access_key: &str) -> Principal {
        let found = store.credentials(access_key).await.expect("a lookup");
        found.expect("a known key").0
    }

    /// A new user with a key of its own: the user's id, and the caller.
    async fn user_with_key(store: &Store, name: &str) -> (String, Principal) {
        let account = store
            .create_user(name, "a-good-password", "user")
            .await
            .expect("a user");
        let (key, _) = store
            .create_key(&account.id, false, None)
            .await
            .expect("a key");
        (account.id, principal_of(store, &key.access_key).await)
    }

    #[tokio::test]
    async fn who_may_do_each_operation() {
        let dir = tempfile::tempdir().expect("a directory");
        let location = StoreLocation {
            database_url: None,
            blob_url: None,
            data_dir: dir.path(),
            database_wait: Duration::from_secs(5),
            database_notices: crate::core::NoticeMode::Auto,
        };
        let store = Store::open(location, StoreSettings::default())
            .await
            .expect("a store");
        store
            .ensure_admin("rootuser", "root-password")
            .await
            .expect("an admin");
        let (owner_id, owner) = user_with_key(&store, "owner").await;
        let (_, reader) = user_with_key(&store, "reader").await;
        let (_, writer) = user_with_key(&store, "writer").await;
        let (_, stranger) = user_with_key(&store, "stranger").await;
        let admin = principal_of(&store, "rootuser").await;
        let (key, _) = store
            .create_key(&owner_id, true, None)
            .await
            .expect("a key");
        let owner_read_only = principal_of(&store, &key.access_key).await;
        for name in ["public", "private"] {
            let name = BucketName::parse(name).expect("a name");
            store.create_bucket(&owner, &name).await.expect("a bucket");
        }
        store
            .set_public_read(&owner, "public", true)
            .await
            .expect("public");
        for (user, level) in [
            ("reader", GrantLevel::Read),
            ("writer", GrantLevel::ReadWrite),
        ] {
            store
                .set_grant(&owner, "public", user, Some(level))
                .await
                .expect("a grant");
        }

        let policy = BucketPolicy {
            store: store.clone(),
        };
        let callers = [
            Some(&owner),
            Some(&admin),
            Some(&reader),
            Some(&writer),
            Some(&stranger),
            None,
            Some(&owner_read_only),
        ];
        for &(operation, access) in OPERATIONS {
            for ((name, who), expected) in CALLERS
                .iter()
                .zip(callers)
                .zip(allowed_on_public_bucket(access))
            {
                let allowed = policy
                    .allow(who, "public", access_of(operation))
                    .await
                    .is_ok();
                assert_eq!(allowed, expected, "{operation} by the {name}");
            }
            // Without public read, a stranger or nobody may not even read.
            for who in [Some(&stranger), None] {
                let allowed = policy.allow(who, "private", access_of(operation)).await;
                assert!(
                    allowed.is_err(),
                    "{operation} by {who:?} on a private bucket"
                );
            }
        }
        store.close().await;
    }
}
