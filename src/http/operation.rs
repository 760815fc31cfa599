//! What a data-plane request is: the one table from (method, route) to an operation, and what each
//! operation means for the rest of the request: its name in logs and metrics, the access its token must
//! grant, and the concurrency limit it counts against.

use axum::http::Method;

use crate::limits::Direction;
use crate::oci::route::V2Route;
use crate::oci::scope::Access;

/// One data-plane operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Base,
    Catalog,
    BlobGet,
    BlobHead,
    BlobDelete,
    UploadStart,
    UploadPatch,
    UploadPut,
    UploadStatus,
    UploadCancel,
    ManifestGet,
    ManifestHead,
    ManifestPut,
    ManifestDelete,
    TagsList,
    Referrers,
    /// A method the route does not take: UNSUPPORTED once the caller holds `action` on the repository
    /// (Distribution's rule: uploads need push, DELETE delete, GET and HEAD pull, anything else push).
    Unsupported {
        action: &'static str,
    },
}

impl Operation {
    /// The operation `method` on `route` asks for.
    pub fn of(method: &Method, route: &V2Route) -> Operation {
        use Operation::*;
        match (method.as_str(), route) {
            ("GET" | "HEAD", V2Route::Base) => Base,
            ("GET" | "HEAD", V2Route::Catalog) => Catalog,
            ("GET", V2Route::Blob { .. }) => BlobGet,
            ("HEAD", V2Route::Blob { .. }) => BlobHead,
            ("DELETE", V2Route::Blob { .. }) => BlobDelete,
            ("POST", V2Route::UploadStart { .. }) => UploadStart,
            ("PATCH", V2Route::Upload { .. }) => UploadPatch,
            ("PUT", V2Route::Upload { .. }) => UploadPut,
            ("GET", V2Route::Upload { .. }) => UploadStatus,
            ("DELETE", V2Route::Upload { .. }) => UploadCancel,
            ("GET", V2Route::Manifest { .. }) => ManifestGet,
            ("HEAD", V2Route::Manifest { .. }) => ManifestHead,
            ("PUT", V2Route::Manifest { .. }) => ManifestPut,
            ("DELETE", V2Route::Manifest { .. }) => ManifestDelete,
            ("GET", V2Route::TagsList { .. }) => TagsList,
            ("GET", V2Route::Referrers { .. }) => Referrers,
            (_, V2Route::UploadStart { .. } | V2Route::Upload { .. }) => Unsupported { action: "push" },
            ("DELETE", _) => Unsupported { action: "delete" },
            ("HEAD", _) => Unsupported { action: "pull" },
            _ => Unsupported { action: "push" },
        }
    }

    /// The operation's name in request logs and metrics.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            Base => "base",
            Catalog => "catalog",
            BlobGet => "blob_get",
            BlobHead => "blob_head",
            BlobDelete => "blob_delete",
            UploadStart => "upload_start",
            UploadPatch => "upload_patch",
            UploadPut => "upload_put",
            UploadStatus => "upload_status",
            UploadCancel => "upload_cancel",
            ManifestGet => "manifest_get",
            ManifestHead => "manifest_head",
            ManifestPut => "manifest_put",
            ManifestDelete => "manifest_delete",
            TagsList => "tags_list",
            Referrers => "referrers",
            Unsupported { .. } => "unsupported",
        }
    }

    /// The action on the route's repository the caller's token must grant.
    fn action(self) -> &'static str {
        use Operation::*;
        match self {
            Base | Catalog | BlobGet | BlobHead | ManifestGet | ManifestHead | TagsList | Referrers => "pull",
            BlobDelete | ManifestDelete => "delete",
            UploadStart | UploadPatch | UploadPut | UploadStatus | UploadCancel | ManifestPut => "push",
            Unsupported { action } => action,
        }
    }

    /// What the caller's token must grant for this operation on `route`: nothing beyond a valid token for
    /// the base (and for a method the base or the catalog does not take), `registry:catalog:*` for the
    /// catalog, else the operation's action on the repository.
    pub fn needs(self, route: &V2Route) -> Vec<Access> {
        match (self, route.repo()) {
            (Operation::Catalog, _) => vec![Access::catalog()],
            (Operation::Base, _) | (_, None) => Vec::new(),
            (operation, Some(repo)) => vec![Access::repository(repo.as_str(), &[operation.action()])],
        }
    }

    /// The limit the operation counts against: pulls are GET/HEAD of blobs and manifests; pushes are
    /// upload POST/PATCH/PUT and manifest PUT. Everything else is not limited.
    pub fn direction(self) -> Option<Direction> {
        use Operation::*;
        match self {
            BlobGet | BlobHead | ManifestGet | ManifestHead => Some(Direction::Pull),
            UploadStart | UploadPatch | UploadPut | ManifestPut => Some(Direction::Push),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::route::parse_v2;

    #[test]
    fn each_method_and_route_has_one_operation_with_its_access_and_limit() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let table: &[(&str, String, &str, &str, Option<Direction>)] = &[
            ("GET", String::new(), "base", "", None),
            ("GET", "_catalog".into(), "catalog", "registry:catalog:*", None),
            (
                "GET",
                format!("a/blobs/{d}"),
                "blob_get",
                "repository:a:pull",
                Some(Direction::Pull),
            ),
            (
                "HEAD",
                format!("a/blobs/{d}"),
                "blob_head",
                "repository:a:pull",
                Some(Direction::Pull),
            ),
            (
                "DELETE",
                format!("a/blobs/{d}"),
                "blob_delete",
                "repository:a:delete",
                None,
            ),
            (
                "POST",
                "a/blobs/uploads/".into(),
                "upload_start",
                "repository:a:push",
                Some(Direction::Push),
            ),
            (
                "PATCH",
                "a/blobs/uploads/x".into(),
                "upload_patch",
                "repository:a:push",
                Some(Direction::Push),
            ),
            (
                "PUT",
                "a/blobs/uploads/x".into(),
                "upload_put",
                "repository:a:push",
                Some(Direction::Push),
            ),
            (
                "GET",
                "a/blobs/uploads/x".into(),
                "upload_status",
                "repository:a:push",
                None,
            ),
            (
                "DELETE",
                "a/blobs/uploads/x".into(),
                "upload_cancel",
                "repository:a:push",
                None,
            ),
            (
                "GET",
                "a/manifests/v1".into(),
                "manifest_get",
                "repository:a:pull",
                Some(Direction::Pull),
            ),
            (
                "HEAD",
                "a/manifests/v1".into(),
                "manifest_head",
                "repository:a:pull",
                Some(Direction::Pull),
            ),
            (
                "PUT",
                "a/manifests/v1".into(),
                "manifest_put",
                "repository:a:push",
                Some(Direction::Push),
            ),
            (
                "DELETE",
                "a/manifests/v1".into(),
                "manifest_delete",
                "repository:a:delete",
                None,
            ),
            ("GET", "a/tags/list".into(), "tags_list", "repository:a:pull", None),
            (
                "GET",
                format!("a/referrers/{d}"),
                "referrers",
                "repository:a:pull",
                None,
            ),
            ("POST", "a/tags/list".into(), "unsupported", "repository:a:push", None),
            ("HEAD", "a/tags/list".into(), "unsupported", "repository:a:pull", None),
            (
                "DELETE",
                "a/tags/list".into(),
                "unsupported",
                "repository:a:delete",
                None,
            ),
            (
                "GET",
                "a/blobs/uploads/".into(),
                "unsupported",
                "repository:a:push",
                None,
            ),
            ("POST", String::new(), "unsupported", "", None),
        ];
        for (method, path, name, needs, direction) in table {
            let route = parse_v2(path).unwrap();
            let operation = Operation::of(&method.parse().unwrap(), &route);
            let granted: Vec<String> = operation.needs(&route).iter().map(Access::to_string).collect();
            assert_eq!(operation.name(), *name, "{method} {path}");
            assert_eq!(granted.join(" "), *needs, "{method} {path}");
            assert_eq!(operation.direction(), *direction, "{method} {path}");
        }
    }
}
