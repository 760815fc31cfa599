//! Locks (changeable attributes) on repositories, manifests and tags: set through the API, inherited
//! downwards, and enforced by every path that writes, deletes, reads or lists content, with an error that
//! names the lock.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::principal;
use crate::common::{OCI_MANIFEST, TestServer, bytes, sha256};

/// PATCHes the locks of `path` (below the default registry's repositories) and returns what it shows.
async fn lock(server: &TestServer, path: &str, changes: Value) -> Value {
    let resp = server
        .api(Method::PATCH, &format!("/registries/default/repositories/{path}"))
        .json(&changes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

/// Asserts `resp` is a lock's refusal and returns its message.
async fn refused(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

async fn send(server: &TestServer, method: Method, path: &str) -> reqwest::Response {
    server.req(method, path).await.send().await.unwrap()
}

/// A second image of `repo`, pushed by digest only; returns its manifest and digest.
async fn untagged_image(server: &TestServer, repo: &str, layer: &[u8]) -> (String, String) {
    let body = server.image_manifest(repo, layer, "").await;
    let digest = sha256(body.as_bytes());
    let resp = server.put_manifest(repo, &digest, OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    (body, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_tag_keeps_its_digest_and_takes_the_same_one_again() {
    let server = TestServer::start().await;
    let v1_body = server.image_manifest("app", &bytes(100, 1), "").await;
    let v1 = sha256(v1_body.as_bytes());
    assert_eq!(
        server.put_manifest("app", "v1", OCI_MANIFEST, &v1_body).await.status(),
        StatusCode::CREATED
    );
    let (other_body, other) = untagged_image(&server, "app", &bytes(100, 2)).await;

    let shown = lock(&server, "app/_tags/v1", json!({ "writeEnabled": false })).await;
    assert_eq!(shown["name"], "v1");
    assert_eq!(shown["digest"], v1.as_str());
    assert_eq!(
        shown["changeableAttributes"],
        json!({ "writeEnabled": false, "deleteEnabled": true, "readEnabled": true, "listEnabled": true })
    );
    let moved = server.put_manifest("app", "v1", OCI_MANIFEST, &other_body).await;
    assert_eq!(
        refused(moved).await,
        "push of app:v1 refused by a lock: writeEnabled is false on the tag"
    );
    let again = server.put_manifest("app", "v1", OCI_MANIFEST, &v1_body).await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the same digest again is no change"
    );
    let pulled = send(&server, Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(pulled.text().await.unwrap(), v1_body);
    // Other tags of the repository move freely.
    assert_eq!(
        server
            .put_manifest("app", "v2", OCI_MANIFEST, &other_body)
            .await
            .status(),
        StatusCode::CREATED
    );

    lock(&server, "app/_tags/v1", json!({ "deleteEnabled": false })).await;
    let untag = send(&server, Method::DELETE, "/v2/app/manifests/v1").await;
    assert_eq!(
        refused(untag).await,
        "delete of app:v1 refused by a lock: deleteEnabled is false on the tag"
    );
    // Deleting the manifest would take the tag with it.
    let by_digest = send(&server, Method::DELETE, &format!("/v2/app/manifests/{v1}")).await;
    assert_eq!(
        refused(by_digest).await,
        format!("delete of app@{v1} refused by a lock: deleteEnabled is false on the tag")
    );
    let api_untag = server
        .api(Method::DELETE, "/registries/default/repositories/app/_tags/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(api_untag.status(), StatusCode::FORBIDDEN);

    let unlocked = lock(
        &server,
        "app/_tags/v1",
        json!({ "writeEnabled": true, "deleteEnabled": true }),
    )
    .await;
    assert_eq!(unlocked["changeableAttributes"]["writeEnabled"], true);
    let moved = server.put_manifest("app", "v1", OCI_MANIFEST, &other_body).await;
    assert_eq!(moved.status(), StatusCode::CREATED);
    let shown = server.api_get("/registries/default/repositories/app/_tags/v1").await;
    assert_eq!(shown["digest"], other.as_str());
    assert_eq!(
        send(&server, Method::DELETE, "/v2/app/manifests/v1").await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_manifest_holds_its_tags_and_its_repository() {
    let server = TestServer::start().await;
    let v1 = server.push_image("app", "v1", &bytes(100, 1)).await;
    let (other_body, _) = untagged_image(&server, "app", &bytes(100, 2)).await;

    let shown = lock(
        &server,
        &format!("app/_manifests/{v1}"),
        json!({ "writeEnabled": false, "deleteEnabled": false }),
    )
    .await;
    assert_eq!(shown["digest"], v1.as_str());
    assert_eq!(shown["tags"], json!(["v1"]));
    assert_eq!(shown["changeableAttributes"]["deleteEnabled"], false);
    let moved = server.put_manifest("app", "v1", OCI_MANIFEST, &other_body).await;
    assert_eq!(
        refused(moved).await,
        "push of app:v1 refused by a lock: writeEnabled is false on the manifest"
    );
    let untag = send(&server, Method::DELETE, "/v2/app/manifests/v1").await;
    assert_eq!(
        refused(untag).await,
        "delete of app:v1 refused by a lock: deleteEnabled is false on the manifest"
    );
    let deleted = send(&server, Method::DELETE, &format!("/v2/app/manifests/{v1}")).await;
    assert!(
        refused(deleted)
            .await
            .ends_with("deleteEnabled is false on the manifest")
    );
    let repository = server
        .api(Method::DELETE, "/registries/default/repositories/app")
        .send()
        .await
        .unwrap();
    assert_eq!(repository.status(), StatusCode::FORBIDDEN);
    let body: Value = repository.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "delete of repository app refused by a lock: deleteEnabled is false on the manifest"
    );
    let manifests = server.api_get("/registries/default/repositories/app/_manifests").await;
    let shown = manifests
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == v1.as_str())
        .unwrap();
    assert_eq!(shown["changeableAttributes"]["writeEnabled"], false);
    let pulled = send(&server, Method::GET, &format!("/v2/app/manifests/{v1}")).await;
    assert_eq!(pulled.status(), StatusCode::OK);

    // Deleting the registry takes everything, locked or not.
    lock(&server, "app", json!({ "deleteEnabled": false })).await;
    let deleted = server.api(Method::DELETE, "/registries/default").send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_repository_takes_no_push_and_loses_nothing() {
    let server = TestServer::start().await;
    let layer = bytes(300, 3);
    let v1_body = server.image_manifest("app", &layer, "").await;
    let v1 = sha256(v1_body.as_bytes());
    let put = server.put_manifest("app", "v1", OCI_MANIFEST, &v1_body).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let shown = lock(&server, "app", json!({ "writeEnabled": false })).await;
    assert_eq!(shown["name"], "app");
    assert_eq!(shown["changeableAttributes"]["writeEnabled"], false);

    let start = send(&server, Method::POST, "/v2/app/blobs/uploads/").await;
    assert_eq!(
        refused(start).await,
        "push to app refused by a lock: writeEnabled is false on the repository"
    );
    let elsewhere = bytes(50, 4);
    server.push_blob("elsewhere", &elsewhere).await;
    let mounted = send(
        &server,
        Method::POST,
        &format!("/v2/app/blobs/uploads/?mount={}&from=elsewhere", sha256(&elsewhere)),
    )
    .await;
    assert_eq!(
        refused(mounted).await,
        format!(
            "mount of blob {} into app refused by a lock: writeEnabled is false on the repository",
            sha256(&elsewhere)
        )
    );
    let retag = server.put_manifest("app", "v2", OCI_MANIFEST, &v1_body).await;
    assert_eq!(
        refused(retag).await,
        "push of app:v2 refused by a lock: writeEnabled is false on the repository"
    );
    // The image stays whole and pullable, and deletes are a separate lock.
    let pulled = send(&server, Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(pulled.status(), StatusCode::OK);
    let layer_pull = send(&server, Method::GET, &format!("/v2/app/blobs/{}", sha256(&layer))).await;
    assert_eq!(layer_pull.bytes().await.unwrap().as_ref(), &layer[..]);

    lock(&server, "app", json!({ "writeEnabled": true, "deleteEnabled": false })).await;
    let untag = send(&server, Method::DELETE, "/v2/app/manifests/v1").await;
    assert_eq!(
        refused(untag).await,
        "delete of app:v1 refused by a lock: deleteEnabled is false on the repository"
    );
    let deleted = send(&server, Method::DELETE, &format!("/v2/app/manifests/{v1}")).await;
    assert_eq!(deleted.status(), StatusCode::FORBIDDEN);
    let repository = server
        .api(Method::DELETE, "/registries/default/repositories/app")
        .send()
        .await
        .unwrap();
    assert_eq!(repository.status(), StatusCode::FORBIDDEN);
    let loose = bytes(70, 5);
    server.push_blob("app", &loose).await;
    let loose_path = format!("/v2/app/blobs/{}", sha256(&loose));
    let unlinked = send(&server, Method::DELETE, &loose_path).await;
    assert_eq!(
        refused(unlinked).await,
        format!(
            "delete of blob {} from app refused by a lock: deleteEnabled is false on the repository",
            sha256(&loose)
        )
    );
    assert_eq!(send(&server, Method::GET, &loose_path).await.status(), StatusCode::OK);
    // Pushing is open again.
    let put = server.put_manifest("app", "v2", OCI_MANIFEST, &v1_body).await;
    assert_eq!(put.status(), StatusCode::CREATED);

    lock(&server, "app", json!({ "deleteEnabled": true })).await;
    let unlinked = send(&server, Method::DELETE, &loose_path).await;
    assert_eq!(unlinked.status(), StatusCode::ACCEPTED);
    let repository = server
        .api(Method::DELETE, "/registries/default/repositories/app")
        .send()
        .await
        .unwrap();
    assert_eq!(repository.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_locks_refuse_pulls_and_lend_no_blobs() {
    let server = TestServer::start().await;
    let layer = bytes(200, 5);
    let v1 = server.push_image("app", "v1", &layer).await;
    let layer_path = format!("/v2/app/blobs/{}", sha256(&layer));
    // Warm the manifest cache: a lock must reach what it holds.
    assert_eq!(
        send(&server, Method::GET, "/v2/app/manifests/v1").await.status(),
        StatusCode::OK
    );

    lock(&server, "app/_tags/v1", json!({ "readEnabled": false })).await;
    let by_tag = send(&server, Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(
        refused(by_tag).await,
        "pull of app:v1 refused by a lock: readEnabled is false on the tag"
    );
    let head = send(&server, Method::HEAD, "/v2/app/manifests/v1").await;
    assert_eq!(head.status(), StatusCode::FORBIDDEN);
    let by_digest = send(&server, Method::GET, &format!("/v2/app/manifests/{v1}")).await;
    assert_eq!(by_digest.status(), StatusCode::OK, "the tag's lock is the tag's");
    lock(&server, "app/_tags/v1", json!({ "readEnabled": true })).await;

    lock(
        &server,
        &format!("app/_manifests/{v1}"),
        json!({ "readEnabled": false }),
    )
    .await;
    let by_digest = send(&server, Method::GET, &format!("/v2/app/manifests/{v1}")).await;
    assert_eq!(
        refused(by_digest).await,
        format!("pull of app@{v1} refused by a lock: readEnabled is false on the manifest")
    );
    let by_tag = send(&server, Method::GET, "/v2/app/manifests/v1").await;
    assert!(refused(by_tag).await.ends_with("readEnabled is false on the manifest"));
    lock(&server, &format!("app/_manifests/{v1}"), json!({ "readEnabled": true })).await;

    lock(&server, "app", json!({ "readEnabled": false })).await;
    let by_tag = send(&server, Method::GET, "/v2/app/manifests/v1").await;
    assert!(
        refused(by_tag)
            .await
            .ends_with("readEnabled is false on the repository")
    );
    let blob = send(&server, Method::GET, &layer_path).await;
    assert_eq!(
        refused(blob).await,
        format!(
            "pull of blob {} from app refused by a lock: readEnabled is false on the repository",
            sha256(&layer)
        )
    );
    // A mount out of it is not made: the client uploads the blob instead.
    let mounted = send(
        &server,
        Method::POST,
        &format!("/v2/copy/blobs/uploads/?mount={}&from=app", sha256(&layer)),
    )
    .await;
    assert_eq!(mounted.status(), StatusCode::ACCEPTED);

    lock(&server, "app", json!({ "readEnabled": true })).await;
    assert_eq!(send(&server, Method::GET, &layer_path).await.status(), StatusCode::OK);
    assert_eq!(
        send(&server, Method::GET, "/v2/app/manifests/v1").await.status(),
        StatusCode::OK
    );
}

async fn tags(server: &TestServer, repo: &str) -> Value {
    let resp = send(server, Method::GET, &format!("/v2/{repo}/tags/list")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<Value>().await.unwrap()["tags"].clone()
}

async fn catalog(server: &TestServer) -> Value {
    let resp = send(server, Method::GET, "/v2/_catalog").await;
    resp.json::<Value>().await.unwrap()["repositories"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_locks_hide_from_the_catalog_and_tag_lists() {
    let server = TestServer::start().await;
    let v1 = server.push_image("app", "v1", b"one").await;
    server.push_image("app", "v2", b"two").await;
    server.push_image("app", "v3", b"three").await;
    server.push_image("web", "v1", b"web").await;

    lock(&server, "app/_tags/v2", json!({ "listEnabled": false })).await;
    assert_eq!(tags(&server, "app").await, json!(["v1", "v3"]));
    lock(
        &server,
        &format!("app/_manifests/{v1}"),
        json!({ "listEnabled": false }),
    )
    .await;
    assert_eq!(
        tags(&server, "app").await,
        json!(["v3"]),
        "a hidden manifest hides its tags"
    );
    let paged = send(&server, Method::GET, "/v2/app/tags/list?n=1").await;
    assert_eq!(paged.json::<Value>().await.unwrap()["tags"], json!(["v3"]));
    // Hidden is not locked: it still pulls by name.
    assert_eq!(
        send(&server, Method::GET, "/v2/app/manifests/v2").await.status(),
        StatusCode::OK
    );

    lock(&server, "web", json!({ "listEnabled": false })).await;
    assert_eq!(catalog(&server).await, json!(["app"]));
    assert_eq!(tags(&server, "web").await, json!([]));
    let api_list = server.api_get("/registries/default/repositories").await;
    assert_eq!(api_list, json!(["app"]));
    let shown = server.api_get("/registries/default/repositories/web").await;
    assert_eq!(shown["changeableAttributes"]["listEnabled"], false);

    lock(&server, "web", json!({ "listEnabled": true })).await;
    assert_eq!(catalog(&server).await, json!(["app", "web"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_and_owners_change_locks() {
    let server = TestServer::start().await;
    server.push_image("app", "v1", b"one").await;
    let patch = |id: String, password: String, body: Value| {
        let request = reqwest::Client::new()
            .patch(server.url("/api/registries/default/repositories/app"))
            .basic_auth(id, Some(password))
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let (id, password) = principal(&server, "/registries/default", "Contributor").await;
    let resp = patch(id, password, json!({ "writeEnabled": false })).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("it takes the Owner role"),
        "{body}"
    );
    let (id, password) = principal(&server, "/registries/default", "Owner").await;
    let resp = patch(id, password, json!({ "writeEnabled": false })).await;
    assert_eq!(resp.status(), StatusCode::OK);

    for (path, body, status) in [
        ("app", json!({ "writeEnabled": "no" }), StatusCode::BAD_REQUEST),
        ("app", json!({ "locked": true }), StatusCode::BAD_REQUEST),
        ("app", json!([]), StatusCode::BAD_REQUEST),
        ("app/_tags/nope", json!({ "writeEnabled": true }), StatusCode::NOT_FOUND),
        ("nope", json!({ "writeEnabled": true }), StatusCode::NOT_FOUND),
        (
            "app/_manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            json!({ "writeEnabled": true }),
            StatusCode::NOT_FOUND,
        ),
        (
            "app/_manifests/latest",
            json!({ "writeEnabled": true }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "app/_tags",
            json!({ "writeEnabled": true }),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let resp = server
            .api(Method::PATCH, &format!("/registries/default/repositories/{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path} {body}");
    }
}
