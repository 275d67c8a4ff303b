//! Service-layer errors as S3 error codes, in one exhaustive match. Internal
//! details are logged, never sent to the client.

use s3s::{S3Error, S3ErrorCode};

use crate::core::CoreError;

pub fn to_s3(error: CoreError) -> S3Error {
    use S3ErrorCode as C;
    let (code, message): (S3ErrorCode, String) = match error {
        CoreError::NoSuchBucket => (
            C::NoSuchBucket,
            "The specified bucket does not exist".into(),
        ),
        CoreError::NoSuchKey => (C::NoSuchKey, "The specified key does not exist.".into()),
        CoreError::NoSuchUpload => (
            C::NoSuchUpload,
            "The specified multipart upload does not exist.".into(),
        ),
        CoreError::BucketNotEmpty => (
            C::BucketNotEmpty,
            "The bucket you tried to delete is not empty".into(),
        ),
        CoreError::BucketAlreadyOwnedByYou => (
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
                .into(),
        ),
        CoreError::BucketAlreadyExists => (
            C::BucketAlreadyExists,
            "The requested bucket name is not available.".into(),
        ),
        CoreError::InvalidBucketName(m) => (C::InvalidBucketName, m),
        CoreError::KeyTooLong => (C::KeyTooLongError, "Your key is too long".into()),
        CoreError::InvalidArgument(m) => (C::InvalidArgument, m),
        CoreError::InvalidRequest(m) => (C::InvalidRequest, m),
        CoreError::PreconditionFailed => (
            C::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold".into(),
        ),
        CoreError::NotModified => (C::NotModified, "Not Modified".into()),
        CoreError::InvalidRange => (
            C::InvalidRange,
            "The requested range is not satisfiable".into(),
        ),
        e @ CoreError::BadDigest(_) => (C::BadDigest, e.to_string()),
        e @ CoreError::InvalidDigest(_) => (C::InvalidDigest, e.to_string()),
        CoreError::InvalidPart(m) => (C::InvalidPart, m),
        CoreError::InvalidPartOrder => (
            C::InvalidPartOrder,
            "The list of parts was not in ascending order.".into(),
        ),
        e @ CoreError::EntityTooSmall(_) => (C::EntityTooSmall, e.to_string()),
        CoreError::EntityTooLarge => (
            C::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.".into(),
        ),
        CoreError::IncompleteBody => (
            C::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header"
                .into(),
        ),
        CoreError::AccessDenied => (C::AccessDenied, "Access Denied".into()),
        // Account errors come from the JSON API; on this port they can only
        // mean the caller may not act.
        e @ (CoreError::NoSuchUser
        | CoreError::UserExists
        | CoreError::UserOwnsBuckets
        | CoreError::BadLogin
        | CoreError::AccountDisabled(_)
        | CoreError::NoSuchAccessKey
        | CoreError::BadSession
        | CoreError::SignupDisabled
        | CoreError::NotFound(_)
        | CoreError::Conflict(_)) => (C::AccessDenied, e.to_string()),
        e @ CoreError::TooManyAttempts(_) => (C::SlowDown, e.to_string()),
        e @ CoreError::QuotaExceeded { .. } => {
            let mut error = S3Error::with_message(C::Custom("QuotaExceeded".into()), e.to_string());
            error.set_status_code(http::StatusCode::FORBIDDEN);
            return error;
        }
        CoreError::BodyRead(m) => body_failure(&m),
        e @ CoreError::Busy(_) => {
            tracing::warn!(error = %e, "busy: refusing a request");
            (C::SlowDown, e.to_string())
        }
        CoreError::Unavailable(m) => {
            tracing::warn!(error = %m, "storage unavailable");
            (
                C::ServiceUnavailable,
                "Please reduce your request rate or retry later.".into(),
            )
        }
        CoreError::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            (
                C::InternalError,
                "We encountered an internal error. Please try again.".into(),
            )
        }
    };
    let custom = matches!(code, S3ErrorCode::Custom(_));
    let mut error = S3Error::with_message(code, message);
    if custom {
        // Codes s3s does not know have no status of their own.
        error.set_status_code(http::StatusCode::BAD_REQUEST);
    }
    error
}

/// s3s reports signature and length problems of a body as stream errors
/// whose types are private; their text says what went wrong.
fn body_failure(message: &str) -> (S3ErrorCode, String) {
    if message.contains("SignatureMismatch") {
        (
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided.".into(),
        )
    } else if message.contains("Sha256Mismatch") {
        (
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        )
    } else {
        (
            S3ErrorCode::IncompleteBody,
            "The request body could not be read completely.".into(),
        )
    }
}

/// Wraps a service-layer result for an S3 handler.
pub trait IntoS3<T> {
    fn s3(self) -> s3s::S3Result<T>;
}

impl<T> IntoS3<T> for Result<T, CoreError> {
    fn s3(self) -> s3s::S3Result<T> {
        self.map_err(to_s3)
    }
}
