//! Bucket operations: list, create, head, delete, location, versioning.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::CisternS3;
use super::auth::principal;
use super::convert::{bucket_name, timestamp};
use super::error::IntoS3;

pub async fn list_buckets(
    s3: &CisternS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let who = principal(&s3.store, &req).await?;
    let buckets = s3.store.visible_buckets(&who).await.s3()?;
    let visible = buckets
        .into_iter()
        .filter(|b| {
            req.input
                .prefix
                .as_ref()
                .is_none_or(|p| b.name.starts_with(p.as_str()))
        })
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_ms)),
            bucket_region: Some(s3.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(visible),
        owner: Some(Owner {
            id: Some(who.user_id),
            display_name: Some(who.name),
        }),
        ..Default::default()
    }))
}

pub async fn create_bucket(
    s3: &CisternS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let who = principal(&s3.store, &req).await?;
    let name = bucket_name(&req.input.bucket)?;
    s3.store.create_bucket(&who, &name).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", name.as_str())),
    }))
}

pub async fn head_bucket(
    s3: &CisternS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s3.region.clone()),
        ..Default::default()
    }))
}

pub async fn delete_bucket(
    s3: &CisternS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    s3.store.delete_bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn get_bucket_location(
    s3: &CisternS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint =
        (s3.region != "us-east-1").then(|| BucketLocationConstraint::from(s3.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: constraint,
    }))
}

/// No bucket is ever versioned: S3 says so with an empty configuration (no
/// `Status`), which tools such as rclone read as "unversioned".
pub async fn get_bucket_versioning(
    s3: &CisternS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
