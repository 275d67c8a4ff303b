//! Who may talk to the S3 port: SigV4 secrets come from the access keys in
//! the metadata store, and anonymous requests are refused.

use std::sync::{Arc, OnceLock};

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::s3_error;

use super::error::to_s3;
use crate::core::{Principal, Store};

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

/// Filled with the S3 operation name once s3s has routed the request, so
/// the HTTP layer can label metrics and logs with it.
#[derive(Clone, Default)]
pub struct OperationName(pub Arc<OnceLock<String>>);

pub struct SignedOnly;

#[async_trait::async_trait]
impl S3Access for SignedOnly {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OperationName>() {
            let _ = slot.0.set(name);
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                AccessDenied,
                "Anonymous access is not allowed; sign the request"
            )),
        }
    }
}

/// The principal behind a signed request.
pub async fn principal<T>(store: &Store, req: &s3s::S3Request<T>) -> S3Result<Principal> {
    let Some(credentials) = &req.credentials else {
        return Err(s3_error!(AccessDenied));
    };
    match store
        .credentials(&credentials.access_key)
        .await
        .map_err(to_s3)?
    {
        Some((principal, _)) => Ok(principal),
        None => Err(s3_error!(InvalidAccessKeyId)),
    }
}
