//! Bad per-app configs and entrypoints: each answers 500 naming the file, key and
//! value, and nothing else is affected.

mod common;

use common::{Apps, Supervisor};

/// Writes `config` as the app's `worker.jsonc` and returns the error JSON it causes.
async fn config_error(supervisor: &Supervisor, apps: &Apps, config: &str) -> serde_json::Value {
    apps.config("hello@1.0.0", config);
    // Configs are re-read at most a second after they change.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = supervisor.get("/hello/").await;
    assert_eq!(status, 500, "{config}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn bad_worker_configs_answer_500_naming_file_key_and_value() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let cases = [
        ("{ timeout: ", "worker.jsonc"),
        ("{ timeout: true }", "key \"timeout\": true"),
        ("{ ttl: -5 }", "key \"ttl\": -5"),
        ("{ idleTimeout: \"-1s\" }", "key \"idleTimeout\": \"-1s\""),
        ("{ maxRequests: \"lots\" }", "key \"maxRequests\": \"lots\""),
        ("{ maxBodySize: \"huge\" }", "key \"maxBodySize\": \"huge\""),
        ("{ env: { A: { nested: 1 } } }", "key \"env\""),
        ("{ ephemeral: \"yes\" }", "key \"ephemeral\": \"yes\""),
        (
            "{ colour: \"blue\" }",
            "key \"colour\": \"blue\" unknown key",
        ),
        ("[1, 2]", "must be an object"),
    ];
    for (config, expected) in cases {
        let error = config_error(&supervisor, &apps, config).await;
        assert_eq!(error["error"]["code"], "APP_CONFIG_INVALID", "{config}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("hello@1.0.0/worker.jsonc"),
            "{config}: {message}"
        );
        assert!(message.contains(expected), "{config}: {message}");
        assert_eq!(
            supervisor.get("/echo/pid").await.0,
            200,
            "other apps keep serving"
        );
    }
    assert!(
        supervisor
            .wait_for_log(
                &["app cannot be served", "hello@1.0.0", "worker.jsonc"],
                std::time::Duration::from_secs(5)
            )
            .await,
        "the same error is logged"
    );
}

#[tokio::test]
async fn entrypoints_outside_the_app_dir_are_refused() {
    let apps = Apps::with(&["hello@1.0.0"]);
    std::fs::write(
        apps.path().join("outside.ts"),
        "export default { fetch() { return new Response('escaped') } }",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        apps.path().join("outside.ts"),
        apps.path().join("hello@1.0.0/link.ts"),
    )
    .unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    for entry in ["../outside.ts", "/etc/passwd", "link.ts"] {
        let error = config_error(&supervisor, &apps, &format!("{{ entrypoint: {entry:?} }}")).await;
        assert_eq!(error["error"]["code"], "APP_ENTRYPOINT_INVALID", "{entry}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("outside the app dir"),
            "{entry}"
        );
    }
    let error = config_error(&supervisor, &apps, "{ entrypoint: \"missing.ts\" }").await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[tokio::test]
async fn the_workerconfig_key_of_package_json_is_read_when_there_is_no_worker_file() {
    let apps = Apps::with(&["hello@1.0.0"]);
    std::fs::remove_file(apps.path().join("hello@1.0.0/worker.jsonc")).unwrap();
    std::fs::write(
        apps.path().join("hello@1.0.0/package.json"),
        r#"{"name":"hello","workerConfig":{"env":{"GREETING":"from package.json"}}}"#,
    )
    .unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    let (_, body) = supervisor.get("/hello/env").await;
    assert!(body.contains("from package.json"), "{body}");
}
