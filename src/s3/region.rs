//! Credential scopes whose region s3s cannot take get S3's answer before
//! s3s sees them: `AuthorizationHeaderMalformed` (or
//! `AuthorizationQueryParametersError` for a presigned URL) with this
//! server's region in a `<Region>` element, which s3cmd reads to sign again
//! for that region (boto3 and aws-cli do the same for requests on a bucket).
//! Other lowercase regions are accepted as they always were: many people's
//! aws-cli profile names their AWS region, and a self-hosted server has no
//! other region to send them to.
//!
//! This is what makes s3cmd's default `bucket_location = US` work.
//! s3cmd signs bucket creation and listing for `US`, the old name of
//! us-east-1; s3s verifies such a signature but then refuses it with a
//! message no client acts on (its region type is lowercase only, checked
//! after the signature, with no hook), and taking it anyway would mean
//! checking SigV4 signatures outside s3s. Redirected here, s3cmd retries
//! with the region named in the answer, as it does on S3.

use http::{Request, Response};

use super::error::error_response;

/// Where a request's credential scope is.
enum Scope {
    Header,
    Query,
}

/// The region of the credential scope `key/date/region/service/aws4_request`.
fn scope_region(credential: &str) -> Option<&str> {
    let mut parts = credential.rsplit('/');
    let (_terminator, _service, region) = (parts.next()?, parts.next()?, parts.next()?);
    // The date and the access key come before the region.
    parts.next()?;
    parts.next()?;
    Some(region)
}

fn signed_region<B>(req: &Request<B>) -> Option<(Scope, String)> {
    if let Some(authorization) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256")
    {
        let credential = rest.split("Credential=").nth(1)?.split(',').next()?.trim();
        return Some((Scope::Header, scope_region(credential)?.to_owned()));
    }
    let credential = req
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))?;
    let credential = percent_encoding::percent_decode_str(credential)
        .decode_utf8()
        .ok()?;
    Some((Scope::Query, scope_region(&credential)?.to_owned()))
}

/// S3's answer to a request signed for a region that s3s would refuse
/// (such as s3cmd's `US`), or `None` when the request is not signed with
/// SigV4 or its region is one s3s takes.
pub fn refusal<B>(req: &Request<B>, expected: &str) -> Option<Response<s3s::Body>> {
    let (scope, region) = signed_region(req)?;
    let taken_by_s3s = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if region == expected || taken_by_s3s {
        return None;
    }
    let (code, message) = match scope {
        Scope::Header => (
            "AuthorizationHeaderMalformed",
            format!(
                "The authorization header is malformed; the region '{region}' is wrong; expecting '{expected}'"
            ),
        ),
        Scope::Query => (
            "AuthorizationQueryParametersError",
            format!(
                "Error parsing the X-Amz-Credential parameter; the region '{region}' is wrong; expecting '{expected}'"
            ),
        ),
    };
    Some(error_response(
        http::StatusCode::BAD_REQUEST,
        &[("Code", code), ("Message", &message), ("Region", expected)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(authorization: &str) -> Request<()> {
        Request::builder()
            .uri("/b/k")
            .header("authorization", authorization)
            .body(())
            .unwrap()
    }

    #[test]
    fn the_scope_region_is_found_in_headers_and_queries() {
        let header = signed(
            "AWS4-HMAC-SHA256 Credential=AK/20260101/US/s3/aws4_request, SignedHeaders=host, Signature=ab",
        );
        assert!(matches!(signed_region(&header), Some((Scope::Header, r)) if r == "US"));
        let query = Request::builder()
            .uri("/b/k?X-Amz-Credential=AK%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=ab")
            .body(())
            .unwrap();
        assert!(matches!(signed_region(&query), Some((Scope::Query, r)) if r == "eu-west-1"));
        let v2 = signed("AWS AK:c2lnbmF0dXJl");
        assert!(signed_region(&v2).is_none());
        let short = signed("AWS4-HMAC-SHA256 Credential=US/s3/aws4_request, Signature=ab");
        assert!(
            signed_region(&short).is_none(),
            "malformed scopes are s3s's to report"
        );
    }

    #[test]
    fn only_other_regions_are_refused() {
        let ours = signed(
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, Signature=ab",
        );
        assert!(refusal(&ours, "us-east-1").is_none());
        let theirs =
            signed("AWS4-HMAC-SHA256 Credential=AK/20260101/<x>/s3/aws4_request, Signature=ab");
        let answer = refusal(&theirs, "us-east-1").expect("refused");
        assert_eq!(answer.status(), 400);
        let body = answer.body().bytes().expect("a whole body");
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.contains("<Code>AuthorizationHeaderMalformed</Code>"),
            "{text}"
        );
        assert!(
            text.contains("&lt;x&gt;") && !text.contains("<x>"),
            "{text}"
        );
        assert!(text.contains("<Region>us-east-1</Region>"), "{text}");
    }
}
