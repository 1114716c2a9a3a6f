//! Unit tests of the fake runtime: addresses, readiness, exits, delays.

use super::*;

fn sandbox_config(annotations: &[(&str, &str)]) -> PodSandboxConfig {
    PodSandboxConfig {
        pod_uid: "uid-1".into(),
        name: "p".into(),
        namespace: "default".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn container(name: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: "busybox:1.36".into(),
        ..Default::default()
    }
}

fn runtime() -> Arc<FakeRuntime> {
    FakeRuntime::new(FakeRuntimeOptions {
        start_delay: Duration::ZERO,
        pod_cidr: Some((Ipv4Addr::new(10, 244, 3, 0), 24)),
    })
}

#[tokio::test]
async fn containers_run_at_once_and_get_pod_ips() {
    let rt = runtime();
    let sb = rt.run_pod_sandbox(&sandbox_config(&[])).await.unwrap();
    let st = rt.pod_sandbox_status(&sb).await.unwrap();
    assert_eq!(st.ip, Some("10.244.3.2".parse().unwrap()));
    let c = rt.create_container(&sb, &container("app")).await.unwrap();
    assert_eq!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Created
    );
    rt.start_container(&c).await.unwrap();
    let s = rt.container_status(&c).await.unwrap();
    assert!(matches!(s.state, ContainerState::Running { .. }));
    assert!(s.image_ref.starts_with("busybox@sha256:"));
    assert!(rt.probe_readiness(&c, None).await.unwrap());
    rt.stop_pod_sandbox(&sb).await.unwrap();
    let s = rt.container_status(&c).await.unwrap();
    assert!(matches!(
        s.state,
        ContainerState::Exited { exit_code: 0, .. }
    ));
    // The address is free again.
    rt.remove_pod_sandbox(&sb).await.unwrap();
    let sb2 = rt.run_pod_sandbox(&sandbox_config(&[])).await.unwrap();
    let ip = rt.pod_sandbox_status(&sb2).await.unwrap().ip.unwrap();
    assert!(ip.to_string().starts_with("10.244.3."));
}

#[tokio::test]
async fn ready_annotation_fails_readiness() {
    let rt = runtime();
    let sb = rt
        .run_pod_sandbox(&sandbox_config(&[(READY_ANNOTATION, "false")]))
        .await
        .unwrap();
    let c = rt.create_container(&sb, &container("app")).await.unwrap();
    rt.start_container(&c).await.unwrap();
    assert!(!rt.probe_readiness(&c, None).await.unwrap());
    rt.update_pod_sandbox(&sb, &sandbox_config(&[]))
        .await
        .unwrap();
    assert!(rt.probe_readiness(&c, None).await.unwrap());
}

#[tokio::test]
async fn exit_code_annotation_ends_containers() {
    let rt = runtime();
    let mut events = rt.events();
    let sb = rt
        .run_pod_sandbox(&sandbox_config(&[(EXIT_CODE_ANNOTATION, "3")]))
        .await
        .unwrap();
    let c = rt.create_container(&sb, &container("app")).await.unwrap();
    rt.start_container(&c).await.unwrap();
    match rt.container_status(&c).await.unwrap().state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => {
            assert_eq!(exit_code, 3);
            assert_eq!(reason, "Error");
        }
        other => panic!("not exited: {other:?}"),
    }
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.kind, PodLifecycleEventType::ContainerDied);
    assert_eq!(ev.pod_uid, "uid-1");
}

#[tokio::test]
async fn exit_annotation_on_a_running_pod_applies_later() {
    let rt = runtime();
    let sb = rt.run_pod_sandbox(&sandbox_config(&[])).await.unwrap();
    let c = rt.create_container(&sb, &container("app")).await.unwrap();
    rt.start_container(&c).await.unwrap();
    rt.update_pod_sandbox(
        &sb,
        &sandbox_config(&[(EXIT_CODE_ANNOTATION, "0"), (EXIT_AFTER_ANNOTATION, "60")]),
    )
    .await
    .unwrap();
    assert!(matches!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Running { .. }
    ));
    rt.update_pod_sandbox(&sb, &sandbox_config(&[(EXIT_CODE_ANNOTATION, "0")]))
        .await
        .unwrap();
    assert!(matches!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Exited { exit_code: 0, .. }
    ));
}

#[tokio::test]
async fn start_delay_defers_running() {
    let rt = FakeRuntime::new(FakeRuntimeOptions {
        start_delay: Duration::from_millis(200),
        pod_cidr: None,
    });
    let mut events = rt.events();
    let sb = rt.run_pod_sandbox(&sandbox_config(&[])).await.unwrap();
    assert_eq!(rt.pod_sandbox_status(&sb).await.unwrap().ip, None);
    let c = rt.create_container(&sb, &container("app")).await.unwrap();
    rt.start_container(&c).await.unwrap();
    assert_eq!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Created
    );
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.kind, PodLifecycleEventType::ContainerStarted);
    assert!(matches!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Running { .. }
    ));
}

#[tokio::test]
async fn init_containers_complete() {
    let rt = runtime();
    let sb = rt
        .run_pod_sandbox(&sandbox_config(&[(EXIT_CODE_ANNOTATION, "1")]))
        .await
        .unwrap();
    let mut cfg = container("init");
    cfg.init = true;
    let c = rt.create_container(&sb, &cfg).await.unwrap();
    rt.start_container(&c).await.unwrap();
    assert!(matches!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Exited { exit_code: 0, .. }
    ));
}
