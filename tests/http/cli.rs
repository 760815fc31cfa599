//! The management CLI: the real `berth` binary, run against a test server with a clean `BERTH_*`
//! environment and no terminal.

use std::process::Stdio;

use berth::config::TEST_OPERATOR_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::auth::principal;
use crate::common::TestServer;

/// What one run of the CLI printed, and whether it succeeded.
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON printed on stdout, once the run is known to have succeeded.
    fn json(&self) -> Value {
        assert!(self.ok, "berth failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// The error line, once the run is known to have failed with one line on stderr and nothing on stdout.
    fn error(&self) -> &str {
        assert!(!self.ok, "berth succeeded: {}", self.stdout);
        assert_eq!(self.stdout, "");
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        self.stderr.trim_end()
    }
}

/// Runs `berth <args>` against `server` with exactly the `BERTH_*` variables in `env`.
async fn berth_env(server: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_USERNAME")
        .env_remove("BERTH_PASSWORD")
        .env_remove("BERTH_SERVER")
        .env("BERTH_SERVER", server)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `berth <args>` as the operator (token from `BERTH_TOKEN`).
async fn berth(server: &TestServer, args: &[&str]) -> Run {
    berth_env(&server.base, &[("BERTH_TOKEN", TEST_OPERATOR_TOKEN)], args).await
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_are_created_listed_shown_updated_and_deleted() {
    let server = TestServer::start().await;
    let created = berth(
        &server,
        &[
            "registry", "create", "-n", "CliReg01", "--sku", "Premium", "--tags", "env=dev", "team=web",
        ],
    )
    .await
    .json();
    assert_eq!(created["name"], "CliReg01");
    assert_eq!(created["id"], "/registries/CliReg01");
    assert_eq!(created["adminUserEnabled"], false);
    assert_eq!(created["provisioningState"], "Succeeded");
    assert_eq!(created["sku"], json!({ "name": "Premium", "tier": "Premium" }));
    assert_eq!(created["tags"], json!({ "env": "dev", "team": "web" }));
    let port = server.base.rsplit_once(':').unwrap().1;
    assert_eq!(
        created["loginServer"],
        format!("clireg01.localhost:{port}"),
        "the login server with the port clients must use"
    );
    assert!(
        created["storageAccount"]["name"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    humantime::parse_rfc3339(created["creationDate"].as_str().unwrap()).unwrap();

    let mut listed = names(&berth(&server, &["registry", "list"]).await.json(), "name");
    listed.sort();
    assert_eq!(listed, ["CliReg01", "default"]);
    assert_eq!(
        berth(&server, &["registry", "show", "-n", "clireg01"]).await.json(),
        created
    );

    let args = [
        "registry",
        "update",
        "-n",
        "CliReg01",
        "--admin-enabled",
        "true",
        "--sku",
        "Basic",
    ];
    let updated = berth(&server, &[&args[..], &["--tags", "env=prod"]].concat())
        .await
        .json();
    assert_eq!(updated["adminUserEnabled"], true);
    assert_eq!(updated["sku"]["name"], "Basic");
    assert_eq!(updated["tags"], json!({ "env": "prod" }));
    let cleared = berth(&server, &["registry", "update", "-n", "CliReg01", "--tags", ""])
        .await
        .json();
    assert_eq!(cleared["tags"], json!({}));
    assert_eq!(cleared["sku"]["name"], "Basic");
    let limited = berth(
        &server,
        &[
            "registry",
            "update",
            "-n",
            "CliReg01",
            "--pull-limit",
            "3",
            "--push-limit",
            "2",
        ],
    )
    .await
    .json();
    assert_eq!(
        limited["limits"],
        json!({ "pulls": 3, "pushes": 2, "storageBytes": 10u64 << 30 }),
        "Basic's quota"
    );

    // Without a terminal, deleting takes --yes.
    let refused = berth(&server, &["registry", "delete", "-n", "CliReg01"]).await;
    assert!(refused.error().contains("pass --yes"), "{}", refused.stderr);
    assert!(berth(&server, &["registry", "show", "-n", "CliReg01"]).await.ok);
    let deleted = berth(&server, &["registry", "delete", "-n", "CliReg01", "--yes"]).await;
    assert!(deleted.ok, "{}", deleted.stderr);
    assert_eq!(deleted.stdout, "");
    assert_eq!(
        berth(&server, &["registry", "show", "-n", "CliReg01"]).await.error(),
        r#"error: registry "CliReg01" not found (404 NOT_FOUND)"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_show_the_names_in_aligned_columns() {
    let server = TestServer::start().await;
    berth(&server, &["registry", "create", "-n", "TableReg1", "--sku", "Standard"])
        .await
        .json();
    let table = berth(&server, &["registry", "list", "-o", "table"]).await;
    assert!(table.ok, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(
        lines[0].starts_with("NAME ") && lines[0].contains("LOGIN SERVER"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("---------  "), "{}", lines[1]);
    assert!(lines.iter().any(|l| l.starts_with("default ")), "{}", table.stdout);
    let row = lines.iter().find(|l| l.starts_with("TableReg1 ")).unwrap();
    assert!(row.starts_with("TableReg1  Standard"), "{row}");
    assert_eq!(lines[0].find("LOGIN SERVER"), row.find("tablereg1."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_credentials_are_shown_and_renewed_one_password_at_a_time() {
    let server = TestServer::start().await;
    berth(
        &server,
        &["registry", "create", "-n", "CredReg01", "--admin-enabled", "true"],
    )
    .await
    .json();
    let shown = berth(&server, &["credential", "show", "-n", "CredReg01"]).await.json();
    assert_eq!(shown["username"], "CredReg01");
    assert_eq!(names(&shown["passwords"], "name"), ["password", "password2"]);
    let [p1, p2] = [0, 1].map(|i| shown["passwords"][i]["value"].as_str().unwrap().to_string());
    assert!(!p1.is_empty() && !p2.is_empty() && p1 != p2);

    let args = ["credential", "renew", "-n", "CredReg01", "--password-name", "password2"];
    let renewed = berth(&server, &args).await.json();
    assert_eq!(renewed["passwords"][0]["value"], p1.as_str());
    let new_p2 = renewed["passwords"][1]["value"].as_str().unwrap();
    assert!(!new_p2.is_empty() && new_p2 != p2);

    let table = berth(&server, &["credential", "show", "-n", "CredReg01", "-o", "table"]).await;
    assert!(table.stdout.starts_with("USERNAME   PASSWORD"), "{}", table.stdout);
    assert!(
        table.stdout.contains(&format!("CredReg01  {p1}  {new_p2}\n")),
        "{}",
        table.stdout
    );

    berth(
        &server,
        &["registry", "update", "-n", "CredReg01", "--admin-enabled", "false"],
    )
    .await
    .json();
    let disabled = berth(&server, &["credential", "show", "-n", "CredReg01"]).await;
    assert!(
        disabled.error().ends_with(
            "disabled; enable it first (berth registry update -n CredReg01 --admin-enabled true) (409 CONFLICT)"
        ),
        "{}",
        disabled.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principals_get_roles_and_new_passwords() {
    let server = TestServer::start().await;
    berth(&server, &["registry", "create", "-n", "SpReg001"]).await.json();
    let args = [
        "sp",
        "create-for-rbac",
        "--scopes",
        "/registries/SpReg001",
        "--role",
        "Reader",
        "--name",
        "ci-pull",
    ];
    let sp = berth(&server, &args).await.json();
    let app_id = sp["appId"].as_str().unwrap().to_string();
    let password = sp["password"].as_str().unwrap().to_string();
    assert_eq!(sp["displayName"], "ci-pull");
    assert_eq!(sp["roleAssignments"][0]["roleDefinitionName"], "Reader");

    let assigned = berth(&server, &["role", "assignment", "list", "--assignee", &app_id])
        .await
        .json();
    assert_eq!(assigned.as_array().unwrap().len(), 1, "{assigned}");
    assert_eq!(assigned[0]["scope"], "/registries/SpReg001");
    assert_eq!(assigned[0]["roleDefinitionName"], "Reader");
    assert_eq!(assigned[0]["principalId"], app_id.as_str());
    assert_eq!(assigned[0]["principalName"], "ci-pull");
    let by_scope = berth(
        &server,
        &["role", "assignment", "list", "--scope", "/registries/SpReg001"],
    )
    .await;
    assert_eq!(by_scope.json(), assigned);
    let listed = berth(&server, &["sp", "list"]).await.json();
    assert_eq!(names(&listed, "appId"), [app_id.as_str()]);

    // A new password replaces the old one: the old one no longer authenticates (401), the new one does (and,
    // the principal being a Reader, is then refused management: 403).
    let reset = berth(&server, &["sp", "reset-credentials", "--id", &app_id])
        .await
        .json();
    assert_eq!(reset["appId"], app_id.as_str());
    let new_password = reset["password"].as_str().unwrap().to_string();
    assert_ne!(new_password, password);
    let as_principal = |password: String| {
        let (base, app_id) = (server.base.clone(), app_id.clone());
        async move {
            let password_arg = format!("--password={password}");
            let login = ["--username", &app_id, &password_arg];
            berth_env(
                &base,
                &[],
                &[&["credential", "show", "-n", "SpReg001"], &login[..]].concat(),
            )
            .await
        }
    };
    let old = as_principal(password).await;
    assert!(
        old.error()
            .contains("(401 UNAUTHORIZED); check --username and --password"),
        "{}",
        old.stderr
    );
    let new = as_principal(new_password).await;
    assert!(new.error().contains("(403 DENIED)"), "{}", new.stderr);
    let chosen = berth(
        &server,
        &[
            "sp",
            "reset-credentials",
            "--id",
            &app_id,
            "--password",
            "a-chosen-password",
        ],
    )
    .await;
    assert_eq!(chosen.json()["password"], "a-chosen-password");

    let args = [
        "role",
        "assignment",
        "create",
        "--assignee",
        &app_id,
        "--role",
        "Contributor",
        "--scope",
    ];
    let more = berth(
        &server,
        &[&args[..], &["/registries/SpReg001/repositories/team"]].concat(),
    )
    .await
    .json();
    assert_eq!(more["scope"], "/registries/SpReg001/repositories/team");
    let id = more["id"].as_str().unwrap();
    let two = berth(
        &server,
        &["role", "assignment", "list", "--assignee", &app_id, "-o", "table"],
    )
    .await;
    assert_eq!(two.stdout.lines().count(), 4, "{}", two.stdout);
    assert!(two.stdout.contains("/registries/SpReg001/repositories/team"));
    assert!(berth(&server, &["role", "assignment", "delete", "--id", id]).await.ok);
    let one = berth(&server, &["role", "assignment", "list", "--assignee", &app_id])
        .await
        .json();
    assert_eq!(names(&one, "scope"), ["/registries/SpReg001"]);

    assert!(berth(&server, &["sp", "delete", "--id", &app_id]).await.ok);
    assert_eq!(berth(&server, &["sp", "list"]).await.json(), json!([]));
    let plain = berth(&server, &["sp", "create", "--name", "plain"]).await.json();
    assert_eq!(plain["displayName"], "plain");
    assert!(plain["password"].as_str().is_some_and(|p| p.len() >= 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_principal_manages_its_own_registry_only() {
    let server = TestServer::start().await;
    for name in ["OwnReg01", "OtherReg1"] {
        berth(&server, &["registry", "create", "-n", name, "--admin-enabled", "true"])
            .await
            .json();
    }
    let args = [
        "sp",
        "create-for-rbac",
        "--scopes",
        "/registries/OwnReg01",
        "--role",
        "Owner",
    ];
    let sp = berth(&server, &args).await.json();
    let (app_id, password) = (sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());

    let password_arg = format!("--password={password}");
    let login = ["--username", app_id, &password_arg];
    let own = berth_env(
        &server.base,
        &[],
        &[&["credential", "show", "-n", "OwnReg01"], &login[..]].concat(),
    )
    .await;
    assert_eq!(own.json()["username"], "OwnReg01");
    let env = [("BERTH_USERNAME", app_id), ("BERTH_PASSWORD", password)];
    let other = berth_env(&server.base, &env, &["credential", "show", "-n", "OtherReg1"]).await;
    assert!(
        other
            .error()
            .starts_with("error: requested access to the resource is denied (403 DENIED)"),
        "{}",
        other.stderr
    );
    let create = berth_env(&server.base, &env, &["registry", "create", "-n", "Sneaky01"]).await;
    assert!(create.error().contains("(403 DENIED)"), "{}", create.stderr);
    let listed = berth_env(&server.base, &env, &["registry", "list"]).await.json();
    assert_eq!(names(&listed, "name"), ["OwnReg01"]);

    // With the operator token exported (as README suggests), an explicit --username wins.
    let exported = [("BERTH_TOKEN", TEST_OPERATOR_TOKEN)];
    let as_owner = berth_env(&server.base, &exported, &[&["registry", "list"], &login[..]].concat())
        .await
        .json();
    assert_eq!(
        names(&as_owner, "name"),
        ["OwnReg01"],
        "the principal's view, not the operator's"
    );
    let empty = berth_env(
        &server.base,
        &[],
        &[&["repository", "list", "-n", "OwnReg01", "-o", "table"], &login[..]].concat(),
    )
    .await;
    assert_eq!(
        empty.stdout, "REPOSITORY\n----------\n",
        "an empty table still has its header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_tags_and_manifests_after_a_push() {
    let server = TestServer::start().await;
    let v1 = server.push_image("cli/app", "v1", b"layer one").await;
    let v2 = server.push_image("cli/app", "v2", b"layer two").await;
    server.push_image("other", "latest", b"layer three").await;

    let repos = berth(&server, &["repository", "list", "-n", "default"]).await.json();
    assert_eq!(repos, json!(["cli/app", "other"]));
    let tags = ["repository", "show-tags", "-n", "default", "--repository", "cli/app"];
    assert_eq!(berth(&server, &tags).await.json(), json!(["v1", "v2"]));
    let table = berth(&server, &[&tags[..], &["-o", "table"]].concat()).await;
    assert_eq!(table.stdout, "TAG\n---\nv1\nv2\n");
    let repo_table = berth(&server, &["repository", "list", "-n", "default", "-o", "table"]).await;
    assert_eq!(repo_table.stdout, "REPOSITORY\n----------\ncli/app\nother\n");

    let manifests = [
        "repository",
        "show-manifests",
        "-n",
        "default",
        "--repository",
        "cli/app",
    ];
    let shown = berth(&server, &manifests).await.json();
    let mut digests = names(&shown, "digest");
    digests.sort();
    let mut pushed = vec![v1.clone(), v2];
    pushed.sort();
    assert_eq!(digests, pushed);
    let first = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == v1.as_str())
        .unwrap();
    assert_eq!(first["tags"], json!(["v1"]));
    let table = berth(&server, &[&manifests[..], &["-o", "table"]].concat()).await;
    assert!(table.stdout.starts_with("DIGEST"), "{}", table.stdout);
    assert!(table.stdout.contains(&v1), "{}", table.stdout);

    let untag = ["repository", "untag", "-n", "default", "--image", "cli/app:v1"];
    assert!(berth(&server, &untag).await.ok);
    assert_eq!(berth(&server, &tags).await.json(), json!(["v2"]));
    let again = berth(&server, &untag).await;
    assert_eq!(again.error(), "error: tag v1 not found in cli/app (404 NOT_FOUND)");

    let delete = ["repository", "delete", "-n", "default", "--repository", "cli/app"];
    assert!(berth(&server, &delete).await.error().contains("pass --yes"));
    assert!(berth(&server, &[&delete[..], &["--yes"]].concat()).await.ok);
    assert_eq!(
        berth(&server, &["repository", "list", "-n", "default"]).await.json(),
        json!(["other"])
    );
    assert_eq!(
        berth(&server, &tags).await.error(),
        "error: repository cli/app not found in default (404 NOT_FOUND)"
    );
}

/// `repository update` locks a repository, a tag or a manifest; `repository show` shows each with its
/// changeableAttributes; a push the lock refuses says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_set_and_shown_by_repository_update_and_show() {
    let server = TestServer::start().await;
    let v1 = server.push_image("cli/app", "v1", b"layer one").await;
    let image = format!("cli/app@{v1}");
    let update = |what: &[&str], flags: &[&str]| {
        let args = [&["repository", "update", "-n", "default"][..], what, flags].concat();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let server = &server;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            berth(server, &args).await
        }
    };
    let tag = update(&["--image", "cli/app:v1"], &["--write-enabled", "false"])
        .await
        .json();
    assert_eq!((&tag["name"], &tag["digest"]), (&json!("v1"), &json!(v1)));
    assert_eq!(tag["changeableAttributes"]["writeEnabled"], false);
    let manifest = update(
        &["--image", &image],
        &["--delete-enabled", "false", "--list-enabled", "false"],
    )
    .await;
    assert_eq!(manifest.json()["changeableAttributes"]["deleteEnabled"], false);
    let repository = update(&["--repository", "cli/app"], &["--read-enabled", "false"])
        .await
        .json();
    assert_eq!(repository["changeableAttributes"]["readEnabled"], false);

    let show = ["repository", "show", "-n", "default", "--image"];
    let shown = berth(&server, &[&show[..], &["cli/app:v1"]].concat()).await.json();
    assert_eq!(
        shown["changeableAttributes"],
        json!({ "writeEnabled": false, "deleteEnabled": true, "readEnabled": true, "listEnabled": true })
    );
    let shown = berth(&server, &[&show[..], &[image.as_str()]].concat()).await.json();
    assert_eq!(shown["tags"], json!(["v1"]));
    assert_eq!(shown["changeableAttributes"]["listEnabled"], false);
    let table = berth(
        &server,
        &[
            "repository",
            "show",
            "-n",
            "default",
            "--repository",
            "cli/app",
            "-o",
            "table",
        ],
    )
    .await;
    let lines: Vec<Vec<&str>> = table.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][4..], ["WRITE", "DELETE", "READ", "LIST"], "{}", table.stdout);
    assert_eq!(lines[2][4..], ["true", "true", "false", "true"], "{}", table.stdout);

    let detail = berth(
        &server,
        &[
            "repository",
            "show-tags",
            "-n",
            "default",
            "--repository",
            "cli/app",
            "--detail",
        ],
    )
    .await
    .json();
    assert_eq!(detail, json!([]), "the manifest's list lock hides its tag");

    let nothing = update(&["--repository", "cli/app"], &[]).await;
    assert!(nothing.error().contains("say what to change"), "{}", nothing.stderr);
    let both = update(
        &["--repository", "cli/app", "--image", "cli/app:v1"],
        &["--write-enabled", "true"],
    )
    .await;
    assert!(
        !both.ok && both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    let bad = update(&["--image", "cli/app@latest"], &["--write-enabled", "true"]).await;
    assert!(
        !bad.ok && bad.stderr.contains("is not REPOSITORY@DIGEST"),
        "{}",
        bad.stderr
    );
    let untag = berth(
        &server,
        &["repository", "untag", "-n", "default", "--image", "cli/app:v1"],
    )
    .await;
    assert_eq!(
        untag.error(),
        "error: delete of cli/app:v1 refused by a lock: deleteEnabled is false on the manifest (403 DENIED)"
    );

    let rule = [
        "immutability",
        "create",
        "-n",
        "default",
        "--repositories",
        "cli/*",
        "--tags",
        "v*",
        "--except",
        "v*-dev",
        "--except",
        "v0*",
    ];
    let created = berth(&server, &rule).await.json();
    assert_eq!(created["id"], 1);
    assert_eq!(created["except"], json!(["v*-dev", "v0*"]));
    let table = berth(&server, &["immutability", "list", "-n", "default", "-o", "table"]).await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("REPOSITORIES"),
        "{}",
        table.stdout
    );
    assert!(
        lines[2].contains("cli/*") && lines[2].contains("v*-dev"),
        "{}",
        table.stdout
    );
    let bad = berth(
        &server,
        &[
            "immutability",
            "create",
            "-n",
            "default",
            "--repositories",
            "a[",
            "--tags",
            "v",
        ],
    )
    .await;
    assert!(bad.error().contains("is not a glob"), "{}", bad.stderr);
    assert!(
        berth(&server, &["immutability", "delete", "-n", "default", "--id", "1"])
            .await
            .ok
    );
    let again = berth(&server, &["immutability", "delete", "-n", "default", "--id", "1"]).await;
    assert_eq!(
        again.error(),
        "error: registry default has no immutability rule 1 (404 NOT_FOUND)"
    );
}

/// `repository show-tag-history` shows each change of a tag; `repository restore` puts a deleted tag
/// back, and a deleted manifest with its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_history_is_shown_and_tags_and_manifests_restored() {
    let server = TestServer::start().await;
    let v1 = server.push_image("cli/app", "v1", b"layer one").await;
    let untag = ["repository", "untag", "-n", "default", "--image", "cli/app:v1"];
    assert!(berth(&server, &untag).await.ok);
    let history = [
        "repository",
        "show-tag-history",
        "-n",
        "default",
        "--repository",
        "cli/app",
    ];
    let shown = berth(&server, &[&history[..], &["--tag", "v1"]].concat()).await.json();
    assert_eq!(names(&shown, "action"), ["delete", "create"]);
    assert_eq!(shown[0]["actor"], "operator");
    assert!(
        shown[0]["client"].as_str().unwrap().starts_with("berth-cli/"),
        "{shown}"
    );
    let table = berth(&server, &[&history[..], &["-o", "table"]].concat()).await;
    assert!(
        table.stdout.starts_with("TIME") && table.stdout.contains("delete"),
        "{}",
        table.stdout
    );

    let restored = berth(
        &server,
        &["repository", "restore", "-n", "default", "--image", "cli/app:v1"],
    )
    .await;
    assert_eq!(
        restored.json(),
        json!({ "digest": v1, "tags": ["v1"], "referrers": [] })
    );
    let image = format!("cli/app@{v1}");
    let delete = server
        .req(Method::DELETE, &format!("/v2/cli/app/manifests/{v1}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::ACCEPTED);
    let restored = berth(&server, &["repository", "restore", "-n", "default", "--image", &image]).await;
    assert_eq!(
        restored.json(),
        json!({ "digest": v1, "tags": ["v1"], "referrers": [] })
    );
    let gone = berth(&server, &["repository", "restore", "-n", "default", "--image", &image]).await;
    assert!(gone.error().contains("is not kept"), "{}", gone.stderr);
}

/// `berth purge` lists candidates (a table of them with `-o table`, the whole report in JSON) and deletes
/// them; `berth retention` edits a registry's policy rule by rule and runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_retention_from_the_command_line() {
    let server = TestServer::start().await;
    server.push_image("ci/app", "build-1", b"one").await;
    server.push_image("ci/app", "build-2", b"two").await;
    let purge = ["purge", "-n", "default", "--filter", "ci/app:build-.*", "--keep", "1"];
    let dry = berth(&server, &[&purge[..], &["--dry-run", "-o", "table"]].concat()).await;
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("REASON"),
        "{}",
        dry.stdout
    );
    assert_eq!(lines.len(), 4, "{}", dry.stdout);
    assert!(dry.stdout.contains("among the 1 newest"), "{}", dry.stdout);
    let applied = berth(&server, &purge).await.json();
    assert_eq!(
        (&applied["dryRun"], &applied["deletedTags"]),
        (&json!(false), &json!(1))
    );
    let bad = berth(&server, &["purge", "-n", "default", "--filter", "nocolon"]).await;
    assert!(bad.error().contains("REPOSITORY_REGEX:TAG_REGEX"), "{}", bad.stderr);
    let missing = berth(&server, &["purge", "-n", "default"]).await;
    assert!(!missing.ok && missing.stderr.contains("--filter"), "{}", missing.stderr);

    let retention = |args: &[&str]| {
        let args = [&["retention"][..], args, &["-n", "default"]].concat();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let server = &server;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            berth(server, &args).await
        }
    };
    let updated = retention(&["update", "--untagged-days", "7"]).await.json();
    assert_eq!(updated["untaggedDays"], 7);
    let ruled = retention(&["add-rule", "--filter", "ci/.*:build-.*", "--days", "30", "--keep", "2"]).await;
    assert_eq!(
        ruled.json()["rules"],
        json!([{ "filter": "ci/.*:build-.*", "days": 30, "keep": 2 }])
    );
    assert_eq!(retention(&["show"]).await.json()["untaggedDays"], 7);
    let run = retention(&["run", "--dry-run", "-o", "table"]).await;
    assert!(run.stdout.starts_with("DRY RUN"), "{}", run.stdout);
    assert!(retention(&["remove-rule", "--filter", "ci/.*:build-.*"]).await.ok);
    let again = retention(&["remove-rule", "--filter", "ci/.*:build-.*"]).await;
    assert!(again.error().contains("has no rule with filter"), "{}", again.stderr);
    let off = retention(&["update", "--untagged-days", "0"]).await.json();
    assert_eq!(off["untaggedDays"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_clear_line_and_a_failure() {
    let server = TestServer::start().await;

    let wrong = berth_env(&server.base, &[("BERTH_TOKEN", "not-the-token")], &["registry", "list"]).await;
    assert_eq!(
        wrong.error(),
        "error: invalid operator token (401 UNAUTHORIZED); check --token or BERTH_TOKEN"
    );
    let missing = berth_env(&server.base, &[], &["registry", "list"]).await;
    assert!(missing.error().contains("set BERTH_TOKEN"), "{}", missing.stderr);
    let sp_without_token = berth_env(&server.base, &[], &["sp", "list"]).await;
    assert!(
        sp_without_token.error().contains("set BERTH_TOKEN"),
        "{}",
        sp_without_token.stderr
    );

    let unknown = berth(&server, &["registry", "show", "-n", "Missing01"]).await;
    assert_eq!(
        unknown.error(),
        r#"error: registry "Missing01" not found (404 NOT_FOUND)"#
    );
    let invalid = berth(&server, &["registry", "create", "-n", "a_b"]).await;
    assert_eq!(
        invalid.error(),
        r#"error: registry name "a_b" must be 5 to 50 letters and digits (400 INVALID)"#
    );
    let bad_sku = berth(&server, &["registry", "create", "-n", "SkuReg01", "--sku", "Gold"]).await;
    assert!(
        bad_sku.error().contains("use Basic, Standard or Premium (400 INVALID)"),
        "{}",
        bad_sku.stderr
    );

    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = berth_env(&closed, &[("BERTH_TOKEN", TEST_OPERATOR_TOKEN)], &["registry", "list"]).await;
    assert!(
        unreachable
            .error()
            .starts_with(&format!("error: cannot reach the Berth server at {closed}: ")),
        "{}",
        unreachable.stderr
    );
    let not_a_url = berth_env("localhost:5000", &[("BERTH_TOKEN", "t")], &["registry", "list"]).await;
    assert!(
        not_a_url.error().contains("is not an http:// or https:// URL"),
        "{}",
        not_a_url.stderr
    );
    let with_path = format!("{}/api", server.base);
    let api_url = berth_env(&with_path, &[("BERTH_TOKEN", "t")], &["registry", "list"]).await;
    assert_eq!(
        api_url.error(),
        format!(
            "error: --server {with_path:?} has a path: give the server's base URL, e.g. {}",
            server.base
        )
    );

    // The health check takes a base URL too.
    let health = berth_env(
        &server.base,
        &[],
        &["healthcheck", "--url", &format!("{}/", server.base)],
    )
    .await;
    assert!(health.ok, "{}", health.stderr);
    assert_eq!(
        health.stdout,
        format!("healthy: {}/healthz answered 200 OK\n", server.base)
    );

    // Usage errors are clap's (exit code 2).
    let usage = berth(&server, &["repository", "untag", "-n", "default", "--image", "no-tag"]).await;
    assert_eq!(usage.code, Some(2));
    assert!(usage.stderr.contains("is not REPOSITORY:TAG"), "{}", usage.stderr);

    // The token is never printed, not even by --help.
    let secret = "a-very-secret-token";
    let help = berth_env(
        &server.base,
        &[("BERTH_TOKEN", secret)],
        &["registry", "list", "--help"],
    )
    .await;
    assert!(help.ok && help.stdout.contains("BERTH_TOKEN"));
    assert!(
        !help.stdout.contains("BERTH_USERNAME=") && !help.stdout.contains("BERTH_SERVER="),
        "no empty or set environment values in --help: {}",
        help.stdout
    );
    let update_help = berth(&server, &["registry", "update", "--help"]).await;
    assert!(update_help.stdout.contains("Registry name"), "{}", update_help.stdout);
    let wrong = berth_env(
        &server.base,
        &[("BERTH_TOKEN", secret)],
        &["registry", "show", "-n", "default"],
    )
    .await;
    for text in [&help.stdout, &help.stderr, &wrong.stdout, &wrong.stderr] {
        assert!(!text.contains(secret), "{text}");
    }
}

/// A service principal running CLI commands with its own credentials.
struct AsPrincipal {
    base: String,
    id: String,
    password: String,
}

impl AsPrincipal {
    async fn run(&self, args: &[&str]) -> Run {
        let login = ["--username", self.id.as_str(), "--password", self.password.as_str()];
        berth_env(&self.base, &[], &[args, &login[..]].concat()).await
    }
}

/// Readers and Contributors use the repository commands within their roles: they see and read what they
/// may pull, Contributors delete what they may delete, and nothing outside their prefix is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reads_what_it_may_pull_and_contributors_delete() {
    let server = TestServer::start().await;
    server.push_image("team/app", "v1", b"app").await;
    server.push_image("team/app", "v2", b"app two").await;
    server.push_image("team/web", "v1", b"web").await;
    server.push_image("other", "v1", b"other").await;
    let as_principal = |(id, password): (String, String)| AsPrincipal {
        base: server.base.clone(),
        id,
        password,
    };
    let reader = as_principal(principal(&server, "/registries/default/repositories/team", "Reader").await);
    let contributor = as_principal(principal(&server, "/registries/default/repositories/team", "Contributor").await);

    let listed = reader.run(&["repository", "list", "-n", "default"]).await.json();
    assert_eq!(listed, json!(["team/app", "team/web"]), "only what the Reader may pull");
    let tags = reader
        .run(&["repository", "show-tags", "-n", "default", "--repository", "team/app"])
        .await;
    assert_eq!(tags.json(), json!(["v1", "v2"]));
    let manifests = reader
        .run(&[
            "repository",
            "show-manifests",
            "-n",
            "default",
            "--repository",
            "team/app",
        ])
        .await;
    assert_eq!(manifests.json().as_array().unwrap().len(), 2);
    let shown = reader
        .run(&["repository", "show", "-n", "default", "--repository", "team/app"])
        .await
        .json();
    assert_eq!((&shown["name"], &shown["tagCount"]), (&json!("team/app"), &json!(2)));
    let shown_outside = reader
        .run(&["repository", "show", "-n", "default", "--repository", "other"])
        .await;
    assert!(
        shown_outside.error().contains("pull on repository other refused"),
        "{}",
        shown_outside.stderr
    );
    let outside = reader
        .run(&["repository", "show-tags", "-n", "default", "--repository", "other"])
        .await;
    assert!(
        outside.error().starts_with(
            "error: requested access to the resource is denied: pull on repository other refused: your roles \
             on registry default do not allow it (403 DENIED)"
        ),
        "{}",
        outside.stderr
    );
    let untag = ["repository", "untag", "-n", "default", "--image", "team/app:v1"];
    let refused = reader.run(&untag).await;
    assert!(
        refused.error().contains("delete on repository team/app refused"),
        "{}",
        refused.stderr
    );

    assert!(
        contributor.run(&untag).await.ok,
        "a Contributor untags inside its prefix"
    );
    let tags = contributor
        .run(&["repository", "show-tags", "-n", "default", "--repository", "team/app"])
        .await;
    assert_eq!(tags.json(), json!(["v2"]));
    let delete_outside = contributor
        .run(&[
            "repository",
            "delete",
            "-n",
            "default",
            "--repository",
            "other",
            "--yes",
        ])
        .await;
    assert!(
        delete_outside.error().contains("delete on repository other refused"),
        "{}",
        delete_outside.stderr
    );
    let deleted = contributor
        .run(&[
            "repository",
            "delete",
            "-n",
            "default",
            "--repository",
            "team/web",
            "--yes",
        ])
        .await;
    assert!(deleted.ok, "{}", deleted.stderr);
    let listed = berth(&server, &["repository", "list", "-n", "default"]).await.json();
    assert_eq!(listed, json!(["other", "team/app"]), "the operator sees what is left");

    // A principal with no role on the registry learns nothing, not even whether it exists.
    let stranger = as_principal(principal(&server, "/registries/default/repositories/team", "Reader").await);
    let created = berth(&server, &["registry", "create", "-n", "Elsewhere1"]).await;
    assert!(created.ok);
    for registry in ["Elsewhere1", "Missing01"] {
        let denied = stranger.run(&["repository", "list", "-n", registry]).await;
        assert!(
            denied
                .error()
                .starts_with("error: requested access to the resource is denied (403 DENIED)"),
            "{registry}: {}",
            denied.stderr
        );
    }
}

/// `registry show-usage` prints the cloud CLI's usage list (a table of name, limit, value and unit) with
/// the storage quota `registry update --storage-quota` set, and `repository show` a repository's counts
/// and size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_registry_and_a_repository() {
    let server = TestServer::start().await;
    server.push_image("cli/app", "v1", b"0123456789").await;
    let config_len = r#"{"architecture":"amd64","os":"linux"}"#.len();
    let bad = berth(
        &server,
        &["registry", "update", "-n", "default", "--storage-quota", "lots"],
    )
    .await;
    assert!(
        !bad.ok && bad.stderr.starts_with("error: invalid value 'lots'"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("is not a size: write e.g. 50GiB"), "{}", bad.stderr);
    let quota = berth(
        &server,
        &["registry", "update", "-n", "default", "--storage-quota", "1.5MiB"],
    )
    .await;
    assert_eq!(quota.json()["limits"]["storageBytes"], 1_572_864);
    let usage = berth(&server, &["registry", "show-usage", "-n", "default", "-o", "table"]).await;
    let size = (config_len + 10).to_string();
    let expected = [
        ["NAME", "LIMIT", "CURRENT VALUE", "UNIT"].as_slice(),
        &["Size", "1572864", &size, "Bytes"],
        &["UnreferencedSize", "", "0", "Bytes"],
        &["Repositories", "", "1", "Count"],
        &["Manifests", "", "1", "Count"],
        &["Tags", "", "1", "Count"],
    ];
    let rows: Vec<Vec<&str>> = usage
        .stdout
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, line)| line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    let expected: Vec<Vec<&str>> = expected
        .iter()
        .map(|row| row.iter().copied().filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows, expected, "{}", usage.stdout);
    let shown = berth(
        &server,
        &["repository", "show", "-n", "default", "--repository", "cli/app"],
    )
    .await;
    assert_eq!(
        shown.json(),
        json!({
            "registry": "default", "name": "cli/app", "manifestCount": 1, "tagCount": 1, "sizeBytes": config_len + 10,
            "changeableAttributes": { "writeEnabled": true, "deleteEnabled": true, "readEnabled": true, "listEnabled": true },
        })
    );
}
