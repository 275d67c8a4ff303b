//! The OpenAPI 3 document served at `/api/v1/openapi.json`. Operations
//! come from the `#[utoipa::path]` annotations on the handlers (collected by
//! the router); this module adds what they share: the error body, the two
//! ways to authenticate, and the error responses every call can give.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

use super::objects;

/// The parts of the document the router cannot collect: metadata, shared
/// schemas, and the object routes (axum routes them with a catch-all).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cistern JSON API",
        description = "Accounts, keys, buckets, objects, audit log and usage. \
            Authenticate with HTTP Basic (name and password) or a Bearer session token \
            from POST /api/v1/auth/login."
    ),
    paths(objects::get, objects::put_raw, objects::delete),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail))
)]
pub struct ApiDoc;

/// Operations anyone may call without credentials.
const OPEN_OPERATIONS: [&str; 2] = ["/api/v1/auth/login", "/api/v1/auth/signup"];

/// Adds the security schemes and the error responses to every operation.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    let authenticated = vec![
        SecurityRequirement::new("basic", Vec::<String>::new()),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ];
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let open = OPEN_OPERATIONS.contains(&path.as_str());
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
        ]
        .into_iter()
        .flatten()
        {
            // Handler names repeat across resources (`list`, `get`); the
            // tag (the resource) makes them unique.
            if let (Some(tag), Some(id)) = (
                operation.tags.as_ref().and_then(|t| t.first()),
                operation.operation_id.as_mut(),
            ) {
                *id = format!("{tag}_{id}");
            }
            if !open {
                operation.security = Some(authenticated.clone());
            }
            let responses = &mut operation.responses.responses;
            responses
                .entry("4XX".to_owned())
                .or_insert_with(|| error("The request was refused; `error.code` says why"));
            responses
                .entry("5XX".to_owned())
                .or_insert_with(|| error("The server or its storage failed; retry later"));
        }
    }
    document
}
