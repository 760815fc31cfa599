//! Tag history and restore: every tag push that moves it, every delete (of the tag, its manifest or its
//! repository) and every restore is recorded with who and which client; a tag is restored to what it
//! pointed at before, a deleted manifest with the tags and referrers it had, until its blobs are collected.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_MANIFEST, TestServer, bytes, sha256};
use crate::gc::{collect, delete_manifest, outlive_grace, quick_collector};

const HISTORY: &str = "/registries/default/repositories/app/_history";

async fn restore(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .api(Method::POST, "/registries/default/repositories/app/_restore")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn pulled(server: &TestServer, reference: &str) -> reqwest::Response {
    server
        .req(Method::GET, &format!("/v2/app/manifests/{reference}"))
        .await
        .send()
        .await
        .unwrap()
}

/// (action, old digest, new digest) of each change, newest first.
fn actions(history: &Value) -> Vec<(String, Value, Value)> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["oldDigest"].clone(),
                c["newDigest"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_change_is_recorded_and_a_tag_is_restored_to_what_it_held() {
    let server = TestServer::start().await;
    let first = server.push_image("app", "v1", &bytes(64, 1)).await;
    let body = server.image_manifest("app", &bytes(64, 2), "").await;
    let second = sha256(body.as_bytes());
    let moved = server
        .req(Method::PUT, "/v2/app/manifests/v1")
        .await
        .header("content-type", OCI_MANIFEST)
        .header("user-agent", "docker/27.5.1 go/go1.22")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::CREATED);
    let again = server.put_manifest("app", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the same digest again is no change"
    );
    server.push_image("app", "other", &bytes(64, 3)).await;
    let untag = server
        .req(Method::DELETE, "/v2/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(untag.status(), StatusCode::ACCEPTED);

    let history = server.api_get(&format!("{HISTORY}?tag=v1")).await;
    assert_eq!(
        actions(&history),
        [
            ("delete".into(), json!(second), Value::Null),
            ("move".into(), json!(first), json!(second)),
            ("create".into(), Value::Null, json!(first)),
        ]
    );
    assert_eq!(history[1]["actor"], "admin");
    assert_eq!(history[1]["client"], "docker/27.5.1 go/go1.22");
    assert!(history[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        server.api_get(HISTORY).await.as_array().unwrap().len(),
        4,
        "with tag other"
    );

    let restored = restore(&server, json!({ "tag": "v1" })).await;
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(
        restored.json::<Value>().await.unwrap(),
        json!({ "digest": second, "tags": ["v1"], "referrers": [] })
    );
    assert_eq!(pulled(&server, "v1").await.text().await.unwrap(), body);
    let history = server.api_get(&format!("{HISTORY}?tag=v1")).await;
    assert_eq!(history[0]["actor"], "operator");
    assert_eq!(actions(&history)[0], ("create".into(), Value::Null, json!(second)));
    let nothing = restore(&server, json!({ "tag": "never" })).await;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
    for bad in [
        json!({}),
        json!({ "tag": "v1", "digest": first }),
        json!({ "tag": "no/tag" }),
    ] {
        assert_eq!(
            restore(&server, bad.clone()).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_manifest_comes_back_with_its_tags_until_its_blobs_are_collected() {
    let server = TestServer::start_with(quick_collector).await;
    let layer = bytes(128, 7);
    let body = server.image_manifest("app", &layer, "").await;
    let digest = sha256(body.as_bytes());
    for tag in ["v1", "latest"] {
        assert_eq!(
            server.put_manifest("app", tag, OCI_MANIFEST, &body).await.status(),
            StatusCode::CREATED
        );
    }
    delete_manifest(&server, "app", &digest).await;
    assert_eq!(pulled(&server, "v1").await.status(), StatusCode::NOT_FOUND);

    let restored = restore(&server, json!({ "digest": digest })).await;
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(
        restored.json::<Value>().await.unwrap(),
        json!({ "digest": digest, "tags": ["latest", "v1"], "referrers": [] })
    );
    for reference in ["v1", "latest", digest.as_str()] {
        assert_eq!(
            pulled(&server, reference).await.text().await.unwrap(),
            body,
            "{reference}"
        );
    }
    let again = restore(&server, json!({ "digest": digest })).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "restored once, no longer kept");

    // A whole repository deleted: its tags come back one by one.
    let repository = server
        .api(Method::DELETE, "/registries/default/repositories/app")
        .send()
        .await
        .unwrap();
    assert_eq!(repository.status(), StatusCode::NO_CONTENT);
    let history = server.api_get(&format!("{HISTORY}?tag=latest")).await;
    assert_eq!(actions(&history)[0], ("delete".into(), json!(digest), Value::Null));
    assert_eq!(history[0]["actor"], "operator");
    // Its blob links went with it; the registry still has the blobs, which the restore links again.
    let tag = restore(&server, json!({ "tag": "latest" })).await;
    assert_eq!(tag.status(), StatusCode::OK);
    assert_eq!(pulled(&server, "latest").await.text().await.unwrap(), body);

    // Once the collector took its blobs, a deleted manifest cannot come back, and says why.
    delete_manifest(&server, "app", &digest).await;
    outlive_grace().await;
    collect(&server, "default", false).await;
    let late = restore(&server, json!({ "digest": digest })).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let text = late.text().await.unwrap();
    assert!(text.contains("was collected since; push the image again"), "{text}");
}

/// The digests `GET /v2/app/referrers/<subject>` lists.
async fn referrers_of(server: &TestServer, subject: &str) -> Vec<String> {
    let index: Value = server
        .req(Method::GET, &format!("/v2/app/referrers/{subject}"))
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    manifests
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_manifest_comes_back_with_the_referrers_deleted_with_it() {
    let server = TestServer::start().await;
    let put = |reference: String, body: String| {
        let server = &server;
        async move {
            let pushed = server.put_manifest("app", &reference, OCI_MANIFEST, &body).await;
            assert_eq!(pushed.status(), StatusCode::CREATED, "{}", pushed.text().await.unwrap());
            sha256(body.as_bytes())
        }
    };
    let referrer_of = |layer: &'static [u8], subject: String, size: usize| {
        let server = &server;
        async move {
            let extra = format!(
                r#","artifactType":"application/vnd.example.signature","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{size}}}"#
            );
            server.image_manifest("app", layer, &extra).await
        }
    };
    let image = server.image_manifest("app", b"the image", "").await;
    let digest = put("v1".into(), image.clone()).await;
    // A signature deleted on its own, earlier: it stays deleted when its subject comes back.
    let older = referrer_of(b"an older signature", digest.clone(), image.len()).await;
    let older = put(sha256(older.as_bytes()), older).await;
    delete_manifest(&server, "app", &older).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A signature, tagged as cosign tags it, and an attestation of that signature.
    let signature = referrer_of(b"a signature", digest.clone(), image.len()).await;
    let signature_tag = digest.replace(':', "-") + ".sig";
    let signature_size = signature.len();
    let signature = put(signature_tag.clone(), signature).await;
    let attestation = referrer_of(b"an attestation", signature.clone(), signature_size).await;
    let attestation = put(sha256(attestation.as_bytes()), attestation).await;
    assert_eq!(referrers_of(&server, &digest).await, [signature.as_str()]);

    delete_manifest(&server, "app", &digest).await;
    assert!(referrers_of(&server, &digest).await.is_empty());
    assert_eq!(pulled(&server, &signature).await.status(), StatusCode::NOT_FOUND);

    let restored = restore(&server, json!({ "digest": digest })).await;
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(
        restored.json::<Value>().await.unwrap(),
        json!({ "digest": digest, "tags": ["v1"], "referrers": [signature, attestation] })
    );
    assert_eq!(referrers_of(&server, &digest).await, [signature.as_str()]);
    assert_eq!(referrers_of(&server, &signature).await, [attestation.as_str()]);
    let by_tag = pulled(&server, &signature_tag).await;
    assert_eq!(by_tag.status(), StatusCode::OK, "the signature's tag came back with it");
    assert_eq!(by_tag.headers()["docker-content-digest"], signature.as_str());
    assert_eq!(pulled(&server, &older).await.status(), StatusCode::NOT_FOUND);
    let again = restore(&server, json!({ "digest": attestation })).await;
    assert_eq!(
        again.status(),
        StatusCode::NOT_FOUND,
        "restored with its subject, no longer kept"
    );
}
