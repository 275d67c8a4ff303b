use crate::helpers::*;

async fn app_with_keys(keys: &[&str]) -> (TestApp, aws_sdk_s3::Client) {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("lst")
        .send()
        .await
        .expect("create");
    for key in keys {
        put_bytes(&s3, "lst", key, b"x".to_vec()).await;
    }
    (app, s3)
}

const TREE: &[&str] = &["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/y", "e"];

#[tokio::test]
async fn v2_lists_with_prefix_and_delimiter() {
    let (app, s3) = app_with_keys(TREE).await;
    let top = s3
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = top.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["c", "e"]);
    assert_eq!(prefixes, ["a/", "b/", "d/"]);
    assert_eq!(top.key_count(), Some(5));

    let inside = s3
        .list_objects_v2()
        .bucket("lst")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = inside.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = inside
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(prefixes, ["a/b/"]);

    let after = s3
        .list_objects_v2()
        .bucket("lst")
        .start_after("b/1")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = after.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["c", "d/x/y", "e"]);
    app.stop().await;
}

#[tokio::test]
async fn v2_pages_with_continuation_tokens_through_prefixes() {
    let (app, s3) = app_with_keys(TREE).await;
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("lst")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        pages += 1;
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        seen.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
        assert!(token.is_some());
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b/", "c", "d/", "e"]);
    assert_eq!(pages, 3);

    let paginated: Vec<String> = s3
        .list_objects_v2()
        .bucket("lst")
        .max_keys(3)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginate")
        .iter()
        .flat_map(|p| {
            p.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
        })
        .collect();
    assert_eq!(paginated, TREE);
    app.stop().await;
}

#[tokio::test]
async fn v1_pages_with_markers_and_url_encoding() {
    let (app, s3) = app_with_keys(&["x 1", "x+2", "y/ü", "z"]).await;
    let first = s3
        .list_objects()
        .bucket("lst")
        .max_keys(2)
        .send()
        .await
        .expect("v1");
    let keys: Vec<_> = first.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["x 1", "x+2"]);
    assert_eq!(first.is_truncated(), Some(true));
    let rest = s3
        .list_objects()
        .bucket("lst")
        .marker("x+2")
        .send()
        .await
        .expect("v1 rest");
    let keys: Vec<_> = rest.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["y/ü", "z"]);
    assert_eq!(rest.is_truncated(), Some(false));

    let delimited = s3
        .list_objects()
        .bucket("lst")
        .delimiter("/")
        .max_keys(3)
        .send()
        .await
        .expect("v1");
    assert_eq!(delimited.is_truncated(), Some(true));
    assert_eq!(delimited.next_marker(), Some("y/"));

    // The Rust SDK hands url-encoded keys over as sent.
    let encoded = s3
        .list_objects_v2()
        .bucket("lst")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("encoded");
    let keys: Vec<_> = encoded.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["x+1", "x%2B2", "y/%C3%BC", "z"]);
    app.stop().await;
}
