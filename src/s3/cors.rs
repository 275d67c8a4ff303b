//! CORS preflights (`OPTIONS`) on the S3 port. No bucket can have a CORS
//! configuration yet, so a preflight gets S3's answer for a bucket without
//! one: 403 `AccessForbidden` and no `Access-Control-*` headers, which tells
//! a browser to refuse the cross-origin request. s3s has no OPTIONS
//! operation (it would answer 501), so this is an s3s custom route; browsers
//! send preflights without credentials, so it takes anonymous requests.

use s3s::path::S3Path;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::auth::{NamesCheckedLater, RequestFacts};
use super::error::to_s3;
use crate::core::names::BucketName;
use crate::core::{CoreError, Store};

pub struct Preflight {
    pub store: Store,
}

fn refusal(code: &str, status: http::StatusCode, message: &str) -> S3Error {
    let mut error = S3Error::with_message(
        S3ErrorCode::Custom(code.to_owned().into()),
        message.to_owned(),
    );
    error.set_status_code(status);
    error
}

fn forbidden(message: &str) -> S3Error {
    refusal("AccessForbidden", http::StatusCode::FORBIDDEN, message)
}

#[async_trait::async_trait]
impl S3Route for Preflight {
    fn is_match(
        &self,
        method: &http::Method,
        _uri: &http::Uri,
        _headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        method == http::Method::OPTIONS
    }

    async fn check_access(&self, _req: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let decoded = percent_encoding::percent_decode_str(req.uri.path()).decode_utf8_lossy();
        let path = s3s::path::parse_path_style_with_validation(&decoded, &NamesCheckedLater)
            .unwrap_or(S3Path::Root);
        if let Some(facts) = req.extensions.get::<RequestFacts>()
            && let Ok(mut facts) = facts.0.lock()
        {
            facts.operation = Some("CorsPreflight".to_owned());
            facts.bucket = path.get_bucket_name().map(str::to_owned);
            facts.key = path.get_object_key().map(str::to_owned);
        }
        let bad_request = |message| refusal("BadRequest", http::StatusCode::BAD_REQUEST, message);
        if !req.headers.contains_key(http::header::ORIGIN) {
            return Err(bad_request(
                "Insufficient information. Origin request header needed.",
            ));
        }
        if !req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Err(bad_request("Invalid Access-Control-Request-Method: null"));
        }
        if let Some(bucket) = path.get_bucket_name() {
            BucketName::parse(bucket).map_err(to_s3)?;
            match self.store.bucket(bucket).await {
                Ok(_) => {}
                Err(CoreError::NoSuchBucket) => {
                    return Err(forbidden("CORSResponse: Bucket not found"));
                }
                Err(e) => return Err(to_s3(e)),
            }
        }
        Err(forbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
        ))
    }
}
