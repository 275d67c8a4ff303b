//! The OpenAPI document matches the router, and malformed requests get JSON
//! errors that name what is wrong.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn every_documented_operation_is_routed_and_guarded() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let document: Value = http
        .get(app.web_url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("json");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let url = path
            .replace("{bucket}", "nobucket")
            .replace("objects/{key}", "objects/dir/file.txt")
            .replace("{key}", "AKNOSUCHKEY")
            .replace("{name}", "nobody")
            .replace("{user}", "nobody");
        for (method, operation) in item.as_object().expect("item") {
            operations += 1;
            let id = operation["operationId"].as_str().expect("operation id");
            assert!(
                operation["responses"]["4XX"]["content"]["application/json"].is_object(),
                "{id} documents its error body"
            );
            let open = operation.get("security").is_none();
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = http
                .request(method.clone(), app.web_url(&url))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            if open {
                // Login and sign-up need a body; without one they answer 422.
                assert_eq!(status, 422, "{method} {url}");
            } else {
                assert_eq!(status, 401, "{method} {url} without credentials");
            }
        }
    }
    assert!(operations >= 30, "{operations} operations documented");
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_json_errors_and_change_nothing() {
    let app = spawn_app().await;
    let api = app.api();
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON error body");
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
            body,
        )
    };
    let create_bucket = || api.request(ROOT, "POST", "/buckets");

    let (status, code, body) = send(create_bucket().body("{\"name\": ")).await;
    assert_eq!((status, code.as_str()), (422, "invalid_json"), "{body}");
    let (status, _, body) = send(create_bucket().body("{\"name\": 7}")).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("string"),
        "{body}"
    );
    let (status, _, body) = send(create_bucket().body("{\"nmae\": \"x\"}")).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nmae"),
        "{body}"
    );

    // A JSON body over the limit is refused without being read to the end.
    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(2 << 20));
    let (status, code, _) = send(create_bucket().body(huge)).await;
    assert_eq!((status, code.as_str()), (413, "too_large"));

    let (status, code, body) = send(api.request(ROOT, "GET", "/audit?limit=many")).await;
    assert_eq!((status, code.as_str()), (400, "invalid_field"));
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );

    let (status, code, _) = send(
        api.request(ROOT, "POST", "/buckets/any/objects")
            .header("content-type", "multipart/form-data"),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_field"));

    let (status, code, _) = send(
        api.request(
            ROOT,
            "PUT",
            "/buckets/nobucket/objects/..%2F..%2Fetc%2Fpasswd",
        )
        .body("x"),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "no_such_bucket"));

    let (status, _, listed) = send(api.request(ROOT, "GET", "/buckets")).await;
    assert_eq!(status, 200);
    assert_eq!(listed, Value::Array(vec![]), "nothing was created");
    app.stop().await;
}
