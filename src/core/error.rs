//! The errors of the service layer. Each front-end maps them to its wire
//! codes in one exhaustive match.

use crate::core::blob::BlobError;
use crate::core::meta::MetaError;
use crate::model::PoolError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("you already own this bucket")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket name is taken")]
    BucketAlreadyExists,
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    #[error("the key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    #[error("the {0} you specified did not match what we received")]
    BadDigest(String),
    #[error("the {0} you specified is not valid")]
    InvalidDigest(String),
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the minimum allowed size")]
    EntityTooSmall(i32),
    #[error("the body is larger than allowed")]
    EntityTooLarge,
    #[error("the body ended before its declared length")]
    IncompleteBody,
    #[error("access denied")]
    AccessDenied,
    #[error("no such user")]
    NoSuchUser,
    #[error("a user with that name already exists")]
    UserExists,
    #[error("the user still owns buckets; delete or hand them over first")]
    UserOwnsBuckets,
    #[error("the user name or password is wrong")]
    BadLogin,
    #[error("the account {0} is disabled")]
    AccountDisabled(String),
    #[error("no such access key")]
    NoSuchAccessKey,
    #[error("the session is invalid, expired or logged out")]
    BadSession,
    #[error("too many failed logins; retry in {0} s")]
    TooManyAttempts(u64),
    #[error("sign-up is disabled on this server")]
    SignupDisabled,
    #[error("the {scope} quota of {quota} bytes would be exceeded ({used} bytes in use)")]
    QuotaExceeded {
        scope: &'static str,
        quota: i64,
        used: i64,
    },
    /// A pool, member, group or result is not there, or not in a state
    /// that allows the change.
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Too much is going on at once (no free database connection, too many
    /// password checks waiting); the request may be retried at once.
    #[error("the server is busy ({0}); retry shortly")]
    Busy(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<MetaError> for CoreError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket => Self::NoSuchBucket,
            MetaError::NoSuchKey => Self::NoSuchKey,
            MetaError::NoSuchUpload => Self::NoSuchUpload,
            MetaError::BucketNotEmpty => Self::BucketNotEmpty,
            MetaError::BucketAlreadyOwnedByYou => Self::BucketAlreadyOwnedByYou,
            MetaError::BucketAlreadyExists => Self::BucketAlreadyExists,
            MetaError::PreconditionFailed => Self::PreconditionFailed,
            MetaError::InvalidPart(m) => Self::InvalidPart(m),
            MetaError::InvalidPartOrder => Self::InvalidPartOrder,
            MetaError::EntityTooSmall(n) => Self::EntityTooSmall(n),
            MetaError::SourceChanged => Self::PreconditionFailed,
            MetaError::NoSuchUser => Self::NoSuchUser,
            MetaError::UserExists => Self::UserExists,
            MetaError::UserOwnsBuckets => Self::UserOwnsBuckets,
            MetaError::QuotaExceeded { scope, quota, used } => {
                Self::QuotaExceeded { scope, quota, used }
            }
            MetaError::Pool(e) => Self::Pool(e),
            MetaError::WriterStopped => Self::Unavailable("metadata writer stopped".into()),
            e @ MetaError::CommitUncertain(_) => Self::Unavailable(e.to_string()),
            MetaError::Database(sqlx::Error::PoolTimedOut) => {
                Self::Busy("no free database connection")
            }
            MetaError::Database(e) if crate::core::meta::unreachable(&e) => {
                Self::Unavailable(format!("metadata database: {e}"))
            }
            e @ (MetaError::Database(_) | MetaError::Migrate(_) | MetaError::Corrupt(_)) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<BlobError> for CoreError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(id) => Self::Internal(format!("blob {id} is missing")),
            BlobError::Io(e) => Self::Internal(format!("blob i/o: {e}")),
            BlobError::Backend(m) | BlobError::BadUrl(m) => Self::Unavailable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_database_pool_is_busy_not_broken() {
        let error = CoreError::from(MetaError::Database(sqlx::Error::PoolTimedOut));
        assert!(matches!(error, CoreError::Busy(_)), "{error:?}");
        let other = CoreError::from(MetaError::Database(sqlx::Error::RowNotFound));
        assert!(matches!(other, CoreError::Internal(_)), "{other:?}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let down = CoreError::from(MetaError::Database(sqlx::Error::Io(refused)));
        assert!(matches!(down, CoreError::Unavailable(_)), "{down:?}");
    }
}
