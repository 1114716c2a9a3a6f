//! Volumes that persist, as the walkthrough's MySQL and the StatefulSet
//! tutorials use them: claims on the default `local-path` StorageClass,
//! provisioned on the node of their first pod and kept across pods;
//! volumeClaimTemplates; reclaim policies. Real Docker pods, driven with
//! kubectl.

mod common;

use std::time::Duration;

use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(90);

fn jsonpath(c: &Cluster, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let p = format!("jsonpath={path}");
    args.extend(["-o", &p]);
    String::from_utf8_lossy(&c.kubectl_output(&args).stdout).to_string()
}

/// The running, not terminating pod of `selector`.
fn live_pod(c: &Cluster, selector: &str) -> Option<String> {
    let out = jsonpath(
        c,
        &["pods", "-l", selector],
        "{range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    );
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 2 && f[1] == "Running")
        .map(|f| f[0].to_string())
}

#[test]
fn claims_keep_their_data_across_pods_and_release_their_volumes() {
    let busybox = images::busybox();
    let c = Cluster::up();
    let classes = c.kubectl(&["get", "storageclass"]);
    assert!(classes.contains("local-path (default)"), "{classes}");
    assert!(classes.contains("kedge.io/local-path"), "{classes}");
    assert!(classes.contains("WaitForFirstConsumer"), "{classes}");

    // The walkthrough's database: a claim with no class gets the default
    // one, and stays Pending until its first pod is scheduled.
    c.apply(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: mysql-pv-claim}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#,
    );
    assert_eq!(
        jsonpath(&c, &["pvc", "mysql-pv-claim"], "{.spec.storageClassName}"),
        "local-path"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        jsonpath(&c, &["pvc", "mysql-pv-claim"], "{.status.phase}"),
        "Pending"
    );
    c.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: mysql}}
spec:
  selector: {{matchLabels: {{app: mysql}}}}
  strategy: {{type: Recreate}}
  template:
    metadata: {{labels: {{app: mysql}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: mysql
        image: {busybox}
        command: ["sh", "-c", "[ -f /var/lib/mysql/first ] || cat /proc/sys/kernel/random/uuid > /var/lib/mysql/first; sleep 3600"]
        volumeMounts: [{{name: mysql-persistent-storage, mountPath: /var/lib/mysql}}]
      volumes:
      - name: mysql-persistent-storage
        persistentVolumeClaim: {{claimName: mysql-pv-claim}}
"#
    ));
    assert!(
        eventually(WAIT, || live_pod(&c, "app=mysql").is_some()),
        "{}\n{}",
        c.kubectl(&["describe", "pods", "-l", "app=mysql"]),
        c.kubectl(&["describe", "pvc"])
    );
    assert_eq!(
        jsonpath(&c, &["pvc", "mysql-pv-claim"], "{.status.phase}"),
        "Bound"
    );
    let volume = jsonpath(&c, &["pvc", "mysql-pv-claim"], "{.spec.volumeName}");
    let pvs = c.kubectl(&["get", "pv", &volume]);
    assert!(
        pvs.contains("1Gi")
            && pvs.contains("RWO")
            && pvs.contains("Delete")
            && pvs.contains("Bound"),
        "{pvs}"
    );
    let first_pod = live_pod(&c, "app=mysql").unwrap();
    let written = c.kubectl(&["exec", &first_pod, "--", "cat", "/var/lib/mysql/first"]);
    assert!(!written.trim().is_empty());

    // The pod goes; its replacement finds the data.
    c.kubectl(&["delete", "pod", &first_pod, "--wait=false"]);
    assert!(eventually(WAIT, || live_pod(&c, "app=mysql")
        .is_some_and(|p| p != first_pod)));
    let second_pod = live_pod(&c, "app=mysql").unwrap();
    let read = c.kubectl(&["exec", &second_pod, "--", "cat", "/var/lib/mysql/first"]);
    assert_eq!(read, written);

    // A StatefulSet's replicas each keep their own claim.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: {busybox}
        command: ["sh", "-c", "[ -f /data/id ] || cat /proc/sys/kernel/random/uuid > /data/id; sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 100Mi}}}}
"#
    ));
    c.kubectl(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    let claims = c.kubectl(&["get", "pvc", "data-db-0", "data-db-1"]);
    assert_eq!(claims.matches("Bound").count(), 2, "{claims}");
    let ids: Vec<String> = ["db-0", "db-1"]
        .iter()
        .map(|p| c.kubectl(&["exec", p, "--", "cat", "/data/id"]))
        .collect();
    assert_ne!(ids[0], ids[1]);
    c.kubectl(&["delete", "pod", "db-0", "--wait=false"]);
    assert!(eventually(WAIT, || {
        jsonpath(
            &c,
            &["pod", "db-0"],
            "{.status.phase} {.metadata.deletionTimestamp}",
        )
        .trim()
            == "Running"
            && jsonpath(&c, &["pod", "db-0"], "{.status.containerStatuses[0].ready}") == "true"
    }));
    assert_eq!(
        c.kubectl(&["exec", "db-0", "--", "cat", "/data/id"]),
        ids[0]
    );
    // A claim of local-path grows; it never shrinks.
    c.kubectl(&[
        "patch",
        "pvc",
        "data-db-0",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"200Mi"}}}}"#,
    ]);
    assert!(
        eventually(WAIT, || jsonpath(
            &c,
            &["pvc", "data-db-0"],
            "{.status.capacity.storage}"
        ) == "200Mi"),
        "{}",
        c.kubectl(&["describe", "pvc", "data-db-0"])
    );
    let grown = jsonpath(&c, &["pvc", "data-db-0"], "{.spec.volumeName}");
    assert_eq!(
        jsonpath(&c, &["pv", &grown], "{.spec.capacity.storage}"),
        "200Mi"
    );
    let shrink = c.kubectl_output(&[
        "patch",
        "pvc",
        "data-db-0",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"50Mi"}}}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&shrink.stderr);
    assert!(
        stderr.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{stderr}"
    );

    // Scaling down keeps the claim (the Retain policy).
    c.kubectl(&["scale", "statefulset", "db", "--replicas=1"]);
    assert!(eventually(WAIT, || !c
        .kubectl_output(&["get", "pod", "db-1"])
        .status
        .success()));
    assert_eq!(
        jsonpath(&c, &["pvc", "data-db-1"], "{.status.phase}"),
        "Bound"
    );

    // Deleting a claim of reclaim policy Delete deletes its volume, and
    // its node removes the directory.
    let dir = jsonpath(&c, &["pv", &volume], "{.spec.hostPath.path}");
    assert!(std::path::Path::new(&dir).join("first").exists(), "{dir}");
    c.kubectl(&["delete", "deployment", "mysql"]);
    c.kubectl(&["delete", "pvc", "mysql-pv-claim"]);
    assert!(
        eventually(WAIT, || !c
            .kubectl_output(&["get", "pv", &volume])
            .status
            .success()),
        "{}",
        c.kubectl(&["get", "pv"])
    );
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is left");

    // A volume an admin made, Retain: bound by class and size, Released
    // (and kept) when its claim goes.
    let dir = c.home.join("manual-volume");
    c.apply(&format!(
        r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: manual}}
spec:
  storageClassName: manual
  capacity: {{storage: 50Mi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {}, type: DirectoryOrCreate}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: manual-claim}}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 20Mi}}}}
"#,
        dir.display()
    ));
    assert!(eventually(WAIT, || jsonpath(
        &c,
        &["pvc", "manual-claim"],
        "{.status.phase} {.spec.volumeName} {.status.capacity.storage}"
    ) == "Bound manual 50Mi"));
    assert!(eventually(WAIT, || c
        .kubectl(&["get", "pv", "manual"])
        .contains("default/manual-claim")));
    c.kubectl(&["delete", "pvc", "manual-claim"]);
    assert!(eventually(WAIT, || jsonpath(
        &c,
        &["pv", "manual"],
        "{.status.phase}"
    ) == "Released"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        jsonpath(&c, &["pv", "manual"], "{.status.phase}"),
        "Released"
    );

    // A claim that asks for more than any volume offers, of a class no
    // provisioner serves, stays Pending.
    let out = c.apply_output(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec:
  accessModes: [ReadWriteSometimes]
  resources: {requests: {storage: 1Gi}}
"#,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.accessModes: Unsupported value: \"ReadWriteSometimes\""),
        "{stderr}"
    );
}
