//! Tag listing and the catalog: lexical order, `n`/`last`, `Link` to the next page.

use reqwest::{Method, StatusCode};

use crate::common::{OCI_MANIFEST, TestServer, error_code, header};

async fn get_json(server: &TestServer, path: &str) -> (Option<String>, serde_json::Value) {
    let resp = server.req(Method::GET, path).await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let link = resp.headers().get("link").map(|l| l.to_str().unwrap().to_string());
    (link, resp.json().await.unwrap())
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order_with_pages_and_links() {
    let server = TestServer::start().await;
    let body = server.image_manifest("tagged/repo", b"layer", "").await;
    let tags = ["v10", "v2", "latest", "A", "_under", "v1.0"];
    for tag in tags {
        assert_eq!(
            server
                .put_manifest("tagged/repo", tag, OCI_MANIFEST, &body)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let mut sorted: Vec<&str> = tags.to_vec();
    sorted.sort();

    let (link, all) = get_json(&server, "/v2/tagged/repo/tags/list").await;
    assert!(link.is_none());
    assert_eq!(all["name"], "tagged/repo");
    assert_eq!(all["tags"], serde_json::json!(sorted));

    let mut collected = Vec::new();
    let mut path = "/v2/tagged/repo/tags/list?n=4".to_string();
    loop {
        let (link, page) = get_json(&server, &path).await;
        let names: Vec<String> = page["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert!(names.len() <= 4);
        collected.extend(names);
        let Some(link) = link else { break };
        assert!(link.ends_with("rel=\"next\""), "{link}");
        path = link.trim_start_matches('<').split('>').next().unwrap().to_string();
    }
    assert_eq!(collected, sorted);

    let (_, after) = get_json(&server, "/v2/tagged/repo/tags/list?last=v1.0").await;
    assert_eq!(after["tags"], serde_json::json!(["v10", "v2"]));
    let (_, zero) = get_json(&server, "/v2/tagged/repo/tags/list?n=0").await;
    assert_eq!(zero["tags"], serde_json::json!([]));
    let bad_n = server
        .req(Method::GET, "/v2/tagged/repo/tags/list?n=many")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(bad_n.status(), StatusCode::BAD_REQUEST);
    let unknown = server
        .req(Method::GET, "/v2/untagged/tags/list")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await, "NAME_UNKNOWN");
}

#[tokio::test]
async fn the_catalog_lists_repositories_in_order_with_pages() {
    let server = TestServer::start().await;
    let repos = ["zeta", "alpha/one", "alpha/two", "mid", "alpha"];
    for repo in repos {
        server.push_blob(repo, repo.as_bytes()).await;
    }
    let mut sorted = repos.to_vec();
    sorted.sort();
    let (link, all) = get_json(&server, "/v2/_catalog").await;
    assert!(link.is_none());
    assert_eq!(all["repositories"], serde_json::json!(sorted));

    let resp = server.req(Method::GET, "/v2/_catalog?n=2").await.send().await.unwrap();
    assert_eq!(header(&resp, "link"), "</v2/_catalog?n=2&last=alpha/one>; rel=\"next\"");
    let first: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(first["repositories"], serde_json::json!(["alpha", "alpha/one"]));
    let (link, rest) = get_json(&server, "/v2/_catalog?n=10&last=alpha/one").await;
    assert!(link.is_none());
    assert_eq!(rest["repositories"], serde_json::json!(["alpha/two", "mid", "zeta"]));
}
