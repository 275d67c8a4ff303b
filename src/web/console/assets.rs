//! The console's static files (stylesheet, script modules, icon), compiled
//! into the binary and served under names that carry a digest of their
//! content, so a browser may keep them for a year and still never runs an
//! old script against a new page.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file: its source name and bytes.
struct Source {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const SOURCES: &[Source] = &[
    Source {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../assets/console/app.css"),
    },
    Source {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../assets/console/app.js"),
    },
    Source {
        name: "upload.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../assets/console/upload.js"),
    },
    Source {
        name: "pool.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../assets/console/pool.js"),
    },
    Source {
        name: "notices.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../assets/console/notices.js"),
    },
    Source {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../../assets/console/icon.svg"),
    },
];

/// A file with its served name (`app.3f9a0c1d2e.css`).
struct Asset {
    source: &'static Source,
    served_name: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|source| {
            let digest = hex::encode(&Sha256::digest(source.bytes)[..6]);
            let (stem, ext) = source.name.rsplit_once('.').unwrap_or((source.name, ""));
            Asset {
                source,
                served_name: format!("{stem}.{digest}.{ext}"),
            }
        })
        .collect()
});

/// The URL a page uses for the file `name` (`app.css`).
pub fn url(name: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.source.name == name)
        .map(|a| format!("/ui/assets/{}", a.served_name))
        .unwrap_or_default()
}

/// `GET /ui/assets/{name}`: only served names exist, and they never
/// change, hence the year-long cache.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.served_name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = asset.source.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.source.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_carry_the_digest() {
        let css = url("app.css");
        assert!(
            css.starts_with("/ui/assets/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/ui/assets/app..css".len() + 12);
        assert_eq!(url("missing.css"), "");
    }
}
