//! Service-layer errors as S3 error codes, in one exhaustive match, and a
//! message for every error that reaches a client. Internal details are
//! logged, never sent to the client.

use http::Response;
use s3s::{S3Error, S3ErrorCode};

use crate::core::CoreError;

const BUCKET_NAME_RULES: &str = "Bucket names are 3 to 63 characters of lowercase letters, digits, '.' and '-', and begin and end with a letter or digit.";

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
        CoreError::InvalidBucketName(m) => (
            C::InvalidBucketName,
            format!("The specified bucket is not valid: {m}. {BUCKET_NAME_RULES}"),
        ),
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
        // Account and pool errors come from the JSON API; on this port they
        // can only mean the caller may not act.
        e @ (CoreError::NoSuchUser
        | CoreError::UserExists
        | CoreError::UserOwnsBuckets
        | CoreError::BadLogin
        | CoreError::AccountDisabled(_)
        | CoreError::NoSuchAccessKey
        | CoreError::BadSession
        | CoreError::SignupDisabled
        | CoreError::Pool(_)) => (C::AccessDenied, e.to_string()),
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

/// An S3 error document (`Code`, `Message`, then any further elements such
/// as `Region`), written by s3s's XML serializer.
/// An S3 error answer written before s3s sees the request.
pub fn error_response(
    status: http::StatusCode,
    fields: &[(&str, &str)],
) -> http::Response<s3s::Body> {
    let mut response = http::Response::new(s3s::Body::from(error_document(fields)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

pub fn error_document(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let mut xml = s3s::xml::Serializer::new(&mut buf);
    let written = xml.decl().and_then(|()| {
        xml.element("Error", |xml| {
            fields
                .iter()
                .try_for_each(|(name, value)| xml.content(name, value))
        })
    });
    if let Err(e) = written {
        tracing::error!(error = %e, "could not write an error document");
    }
    buf
}

/// What an error code means and what to do about it, for the errors that
/// s3s writes without a message of its own.
fn default_message(code: &str) -> String {
    match code {
        "SignatureDoesNotMatch" => "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        "InvalidBucketName" => BUCKET_NAME_RULES,
        "InvalidURI" => "Couldn't parse the specified URI: the path must be /bucket or /bucket/key, percent-encoded UTF-8.",
        "KeyTooLongError" => "Your key is too long: object keys are at most 1024 bytes of UTF-8.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        "MissingRequestBodyError" => "Request body is empty: this operation needs an XML body.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MaxMessageLengthExceeded" => "Your request was too big.",
        "InvalidRange" => "The requested range is not satisfiable.",
        "MalformedPOSTRequest" => "The body of your POST request is not well-formed multipart/form-data.",
        "InvalidPolicyDocument" => "The content of the form does not meet the conditions specified in the policy document.",
        "AccessDenied" => "Access Denied",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "NotImplemented" => "A header or query you provided implies functionality that is not implemented.",
        "InternalError" => "We encountered an internal error. Please try again.",
        other => return format!("The request failed with the S3 error {other}."),
    }
    .to_owned()
}

/// Gives an error answer without a `<Message>` one that says what its code
/// means. s3s writes some errors without a message (a bad signature,
/// malformed XML, a missing body or length, a bad path), which clients show
/// as "Unknown", and offers no hook before it serialises them.
pub fn with_message(response: Response<s3s::Body>) -> Response<s3s::Body> {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let Some(body) = response.body().bytes() else {
        return response;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return response;
    };
    if text.contains("<Message>") {
        return response;
    }
    let Some((code, _)) = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
    else {
        return response;
    };
    let document = error_document(&[("Code", code), ("Message", &default_message(code))]);
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, s3s::Body::from(document))
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
