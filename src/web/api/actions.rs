//! What each JSON API route does, in words, and to what: the audit log's
//! `action` (`bucket.set_public`, `user.password_change`, ...) and its
//! target (the bucket and key, or a user, key, pool, member or group),
//! read from the matched route and its path parameters.

/// The audit facts of one API request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Described {
    pub action: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// A target that is neither a bucket nor an object, as `kind:name`
    /// (`user:alice`, `pool:sky/member:cam-1`).
    pub target: Option<String>,
}

/// The action name of a route; `None` for routes this table does not know
/// (they are audited by method and path).
fn action_of(method: &str, route: &str) -> Option<&'static str> {
    Some(match (method, route) {
        ("GET", "/api/v1/auth/me") => "auth.me",
        ("POST", "/api/v1/auth/login") => "auth.login",
        ("POST", "/api/v1/auth/logout") => "auth.logout",
        ("POST", "/api/v1/auth/signup") => "auth.signup",
        ("GET", "/api/v1/users") => "user.list",
        ("POST", "/api/v1/users") => "user.create",
        ("DELETE", "/api/v1/users/{name}") => "user.delete",
        ("POST", "/api/v1/users/{name}/disable") => "user.disable",
        ("POST", "/api/v1/users/{name}/enable") => "user.enable",
        ("PUT", "/api/v1/users/{name}/password") => "user.password_change",
        ("GET", "/api/v1/keys") => "key.list",
        ("POST", "/api/v1/keys") => "key.create",
        ("DELETE", "/api/v1/keys/{key}") => "key.revoke",
        ("GET", "/api/v1/buckets") => "bucket.list",
        ("POST", "/api/v1/buckets") => "bucket.create",
        ("GET", "/api/v1/buckets/{bucket}") => "bucket.show",
        ("DELETE", "/api/v1/buckets/{bucket}") => "bucket.delete",
        ("PUT", "/api/v1/buckets/{bucket}/public") => "bucket.set_public",
        ("PUT", "/api/v1/buckets/{bucket}/grants/{user}") => "bucket.grant",
        ("DELETE", "/api/v1/buckets/{bucket}/grants/{user}") => "bucket.revoke_grant",
        ("POST", "/api/v1/buckets/{bucket}/share") => "object.share",
        ("GET", "/api/v1/buckets/{bucket}/objects") => "object.list",
        ("POST", "/api/v1/buckets/{bucket}/objects") => "object.upload_form",
        ("GET", "/api/v1/buckets/{bucket}/objects/{*key}") => "object.get",
        ("HEAD", "/api/v1/buckets/{bucket}/objects/{*key}") => "object.head",
        ("PUT", "/api/v1/buckets/{bucket}/objects/{*key}") => "object.put",
        ("DELETE", "/api/v1/buckets/{bucket}/objects/{*key}") => "object.delete",
        ("POST", "/api/v1/buckets/{bucket}/uploads") => "upload.create",
        ("GET", "/api/v1/buckets/{bucket}/uploads/{upload}/parts") => "upload.list_parts",
        ("PUT", "/api/v1/buckets/{bucket}/uploads/{upload}/parts/{number}") => "upload.put_part",
        ("POST", "/api/v1/buckets/{bucket}/uploads/{upload}/complete") => "upload.complete",
        ("DELETE", "/api/v1/buckets/{bucket}/uploads/{upload}") => "upload.abort",
        ("POST", "/ui/sign-in") => "auth.login",
        ("POST", "/ui/sign-up") => "auth.signup",
        ("POST", "/ui/sign-out") => "auth.logout",
        ("POST", "/ui/sign-out-everywhere") => "auth.logout_everywhere",
        ("POST", "/ui/account/password") => "user.password_change",
        ("GET", "/ui/buckets") => "bucket.list",
        ("POST", "/ui/buckets") => "bucket.create",
        ("GET", "/ui/buckets/{bucket}") => "object.list",
        ("GET", "/ui/buckets/{bucket}/settings") => "bucket.show",
        ("POST", "/ui/buckets/{bucket}/public") => "bucket.set_public",
        ("POST", "/ui/buckets/{bucket}/grants") => "bucket.grant",
        ("POST", "/ui/buckets/{bucket}/grants/revoke") => "bucket.revoke_grant",
        ("POST", "/ui/buckets/{bucket}/delete") => "bucket.delete",
        ("POST", "/ui/buckets/{bucket}/delete-files") => "object.delete",
        ("POST", "/ui/buckets/{bucket}/folders") => "object.create_folder",
        ("POST", "/ui/buckets/{bucket}/rename") => "object.rename",
        ("POST", "/ui/buckets/{bucket}/share") => "object.share",
        ("POST", "/ui/buckets/{bucket}/upload") => "object.upload_form",
        ("GET", "/ui/buckets/{bucket}/objects/{*key}") => "object.show",
        ("GET", "/ui/buckets/{bucket}/object") => "object.show",
        ("GET", "/ui/buckets/{bucket}/file") => "object.get",
        ("HEAD", "/ui/buckets/{bucket}/file") => "object.head",
        ("GET", "/share/{bucket}") => "object.get_shared",
        ("HEAD", "/share/{bucket}") => "object.get_shared",
        ("GET", "/share/{bucket}/{*key}") => "object.get_shared",
        ("HEAD", "/share/{bucket}/{*key}") => "object.get_shared",
        ("GET", "/ui/keys") => "key.list",
        ("POST", "/ui/keys") => "key.create",
        ("POST", "/ui/keys/revoke") => "key.revoke",
        ("GET", "/ui/history") => "audit.query",
        ("GET", "/ui/usage") => "usage.own",
        ("GET", "/ui/pools") => "pool.list",
        ("GET", "/ui/pools/{pool}") => "pool.show",
        ("POST", "/ui/pools/{pool}/groups") => "group.console_action",
        ("POST", "/ui/pools/{pool}/members") => "member.add",
        ("POST", "/ui/pools/{pool}/members/{member}") => "member.console_action",
        ("GET", "/ui/pools/{pool}/groups/{group}") => "group.show",
        ("GET", "/ui/pools/{pool}/members/{member}") => "member.show",
        ("GET", "/ui/events") => "event.stream",
        ("GET", "/ui/member") => "member.own_page",
        ("POST", "/ui/member/sign-in") => "auth.member_login",
        ("POST", "/ui/member/sign-out") => "auth.member_logout",
        ("GET", "/ui/member/result") => "result.latest",
        ("GET", "/ui/buckets/{bucket}/gallery") => "object.list",
        ("GET", "/ui/buckets/{bucket}/photo") => "object.show",
        ("GET", "/ui/buckets/{bucket}/thumb") => "object.thumbnail",
        ("GET", "/ui/admin/usage") => "usage.all",
        ("GET", "/ui/admin/audit") => "audit.query",
        ("GET", "/ui/admin/users") => "user.list",
        ("POST", "/ui/admin/users") => "user.create",
        ("POST", "/ui/admin/users/{name}/password") => "user.password_change",
        ("POST", "/ui/admin/users/{name}/quota") => "quota.set_user",
        ("POST", "/ui/admin/users/{name}/delete") => "user.delete",
        ("POST", "/ui/admin/users/{name}/{action}") => "user.",
        ("PUT", "/api/v1/admin/users/{name}/quota") => "quota.set_user",
        ("PUT", "/api/v1/admin/buckets/{bucket}/quota") => "quota.set_bucket",
        ("GET", "/api/v1/audit") => "audit.query",
        ("GET", "/api/v1/backup-runs") => "audit.backup_runs",
        ("POST", "/api/v1/backup-runs") => "audit.backup_report",
        ("GET", "/api/v1/usage") => "usage.own",
        ("GET", "/api/v1/admin/usage") => "usage.all",
        ("GET", "/api/v1/events") => "event.stream",
        ("GET", "/api/v1/pools") => "pool.list",
        ("POST", "/api/v1/pools") => "pool.create",
        ("GET", "/api/v1/pools/{pool}") => "pool.show",
        ("GET", "/api/v1/pools/{pool}/members") => "member.list",
        ("POST", "/api/v1/pools/{pool}/members") => "member.add",
        ("DELETE", "/api/v1/pools/{pool}/members/{member}") => "member.remove",
        ("POST", "/api/v1/pools/{pool}/members/{member}/{action}") => "member.",
        ("GET", "/api/v1/pools/{pool}/contributions") => "contribution.list",
        ("POST", "/api/v1/pools/{pool}/contributions") => "contribution.send",
        ("GET", "/api/v1/pools/{pool}/groups") => "group.list",
        ("POST", "/api/v1/pools/{pool}/claims") => "group.claim",
        ("POST", "/api/v1/pools/{pool}/groups/{group}/seal") => "group.seal",
        ("POST", "/api/v1/pools/{pool}/groups/{group}/lease") => "group.renew_lease",
        ("POST", "/api/v1/pools/{pool}/groups/{group}/fail") => "group.fail",
        ("POST", "/api/v1/pools/{pool}/groups/{group}/reopen") => "group.reopen",
        ("GET", "/api/v1/pools/{pool}/groups/{group}/manifest") => "group.manifest",
        ("GET", "/api/v1/pools/{pool}/groups/{group}/archive") => "group.archive",
        ("GET", "/api/v1/pools/{pool}/groups/{group}/files/{id}") => "group.file",
        ("PUT", "/api/v1/pools/{pool}/groups/{group}/result") => "result.publish",
        ("GET", "/api/v1/pools/{pool}/groups/{group}/result") => "result.get",
        ("GET", "/api/v1/pools/{pool}/results/latest") => "result.latest",
        ("GET", "/api/v1/pools/{pool}/deliveries") => "result.deliveries",
        ("GET", "/api/v1/pools/{pool}/webhook/attempts") => "webhook.attempts",
        _ => return None,
    })
}

/// Names the action and target of a request from its method, matched
/// route (`None` when no route matched) and path parameters.
pub fn describe<'a>(
    method: &str,
    route: Option<&str>,
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Described {
    let params: Vec<(&str, &str)> = params.into_iter().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let Some(action) = route.and_then(|r| action_of(method, r)) else {
        let front = if path.starts_with("/api/") {
            "api"
        } else {
            "console"
        };
        return Described {
            action: format!("{front}:{method} {}", route.unwrap_or(path)),
            ..Described::default()
        };
    };
    let action = match action {
        // One route for disable, enable and rekey; anything else is not
        // an action and is named by its route.
        "user." => match param("action").as_deref() {
            Some(word @ ("disable" | "enable")) => format!("user.{word}"),
            _ => format!("console:{method} {}", route.unwrap_or(path)),
        },
        "member." => match param("action").as_deref() {
            Some(word @ ("disable" | "enable" | "rekey")) => format!("member.{word}"),
            _ => format!("api:{method} {}", route.unwrap_or(path)),
        },
        other => other.to_owned(),
    };
    let mut target = None;
    if let Some(user) = param("name").or_else(|| param("user")) {
        target = Some(format!("user:{user}"));
    }
    if let Some(key) = param("key").filter(|_| param("bucket").is_none()) {
        target = Some(format!("key:{key}"));
    }
    if let Some(pool) = param("pool") {
        let mut words = format!("pool:{pool}");
        if let Some(member) = param("member") {
            words.push_str(&format!("/member:{member}"));
        }
        if let Some(group) = param("group") {
            words.push_str(&format!("/group:{group}"));
        }
        target = Some(words);
    }
    Described {
        action,
        bucket: param("bucket"),
        key: param("key").filter(|_| param("bucket").is_some()),
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    #[test]
    fn routes_are_named_in_words_with_their_target() {
        // method, route, parameters, action, bucket, key, target
        let cases: &[Case] = &[
            (
                "PUT",
                "/api/v1/buckets/{bucket}/public",
                &[("bucket", "photos")],
                "bucket.set_public",
                Some("photos"),
                None,
                None,
            ),
            (
                "PUT",
                "/api/v1/users/{name}/password",
                &[("name", "alice")],
                "user.password_change",
                None,
                None,
                Some("user:alice"),
            ),
            (
                "PUT",
                "/api/v1/buckets/{bucket}/objects/{*key}",
                &[("bucket", "b"), ("key", "a/b.txt")],
                "object.put",
                Some("b"),
                Some("a/b.txt"),
                None,
            ),
            (
                "DELETE",
                "/api/v1/keys/{key}",
                &[("key", "CK1")],
                "key.revoke",
                None,
                None,
                Some("key:CK1"),
            ),
            (
                "PUT",
                "/api/v1/buckets/{bucket}/grants/{user}",
                &[("bucket", "b"), ("user", "bob")],
                "bucket.grant",
                Some("b"),
                None,
                Some("user:bob"),
            ),
            (
                "POST",
                "/api/v1/pools/{pool}/members/{member}/{action}",
                &[("pool", "sky"), ("member", "cam"), ("action", "disable")],
                "member.disable",
                None,
                None,
                Some("pool:sky/member:cam"),
            ),
            (
                "POST",
                "/api/v1/pools/{pool}/groups/{group}/seal",
                &[("pool", "sky"), ("group", "g1")],
                "group.seal",
                None,
                None,
                Some("pool:sky/group:g1"),
            ),
        ];
        for (method, route, params, action, bucket, key, target) in cases {
            let described = describe(method, Some(route), route, params.iter().copied());
            assert_eq!(described.action, *action, "{method} {route}");
            assert_eq!(described.bucket.as_deref(), *bucket, "{method} {route}");
            assert_eq!(described.key.as_deref(), *key, "{method} {route}");
            assert_eq!(described.target.as_deref(), *target, "{method} {route}");
        }
    }

    #[test]
    fn unknown_routes_keep_method_and_path() {
        let described = describe("GET", None, "/api/v1/nothing", []);
        assert_eq!(described.action, "api:GET /api/v1/nothing");
        let route = "/api/v1/pools/{pool}/members/{member}/{action}";
        let made_up = describe(
            "POST",
            Some(route),
            route,
            [("pool", "p"), ("member", "m"), ("action", "explode")],
        );
        assert_eq!(made_up.action, format!("api:POST {route}"));
    }
}
