//! CustomResourceDefinitions as a user drives them: a definition applied
//! with kubectl becomes served, its objects are validated against its
//! schema (with kube-apiserver's field paths), defaulted and pruned, listed
//! with its printer columns, scaled and given status through subresources,
//! and removed with it; and an operator written with kube-rs's
//! `CustomResource` derive reconciles them, writing their status.

mod common;

use std::time::Duration;

use common::{eventually, Cluster};

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      description: The cron spec defining the interval a CronJob is run
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    selectableFields:
    - jsonPath: .spec.image
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
                x-kubernetes-validations:
                - rule: self != 'banned'
                  message: the banned image is not allowed
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"#;

fn established(c: &Cluster) {
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]);
}

#[test]
fn a_definition_serves_validates_and_prints_its_objects() {
    let c = Cluster::start();
    c.apply(CRONTAB_CRD);
    established(&c);
    let out = c.kubectl(&["get", "crd"]);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.lines().next().unwrap().ends_with("CREATED AT"), "{out}");
    assert!(out.contains("crontabs.stable.example.com"), "{out}");
    let conditions = get_field(
        &c,
        "crd",
        "crontabs.stable.example.com",
        "{.status.acceptedNames.kind} {.status.storedVersions}",
    );
    assert_eq!(conditions, r#"CronTab ["v1"]"#);

    // Created, defaulted, listed by its short name with its columns.
    c.apply(CRONTAB);
    let out = c.kubectl(&["get", "ct"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{out}");
    assert!(out.contains("my-new-cron-object"), "{out}");
    assert!(out.contains("* * * * */5"), "{out}");
    let replicas = get_field(&c, "crontab", "my-new-cron-object", "{.spec.replicas}");
    assert_eq!(replicas, "1", "the schema's default");

    // Invalid objects are refused with the schema's field paths.
    let err = c.kubectl_fails(&[
        "patch",
        "crontab",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":20,"cronSpec":"every minute"}}"#,
    ]);
    assert!(
        err.contains(r#"The CronTab "my-new-cron-object" is invalid"#),
        "{err}"
    );
    assert!(err.contains("spec.replicas: Invalid value: 20"), "{err}");
    assert!(
        err.contains("spec.cronSpec: Invalid value: \"every minute\""),
        "{err}"
    );
    let err = c.kubectl_fails(&[
        "patch",
        "crontab",
        "my-new-cron-object",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/cronSpec"}]"#,
    ]);
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");
    // So are objects that break the schema's CEL rules.
    let err = c.kubectl_fails(&[
        "patch",
        "crontab",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"banned"}}"#,
    ]);
    assert!(
        err.contains(r#"spec.image: Invalid value: "string": the banned image is not allowed"#),
        "{err}"
    );
    // Strategic merge patch is not for custom resources.
    let err = c.kubectl_fails(&[
        "patch",
        "crontab",
        "my-new-cron-object",
        "--type=strategic",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert!(
        err.contains("the body of the request was in an unknown format"),
        "{err}"
    );

    // Unknown fields: an error for kubectl's strict validation, dropped
    // without it.
    let with_unknown = CRONTAB.replace("image:", "colour: blue\n  image:");
    let err = apply_fails(&c, &with_unknown);
    assert!(err.contains(r#"unknown field "spec.colour""#), "{err}");
    let mut cmd = c.kubectl_cmd(&["apply", "--validate=false", "-f", "-"]);
    assert!(pipe(&mut cmd, &with_unknown).status.success());
    let spec = get_field(&c, "ct", "my-new-cron-object", "{.spec}");
    assert!(!spec.contains("colour"), "pruned: {spec}");

    // kubectl explain reads the published schema.
    let out = c.kubectl(&["explain", "crontab.spec"]);
    assert!(out.contains("KIND:       CronTab"), "{out}");
    assert!(out.contains("cronSpec\t<string> -required-"), "{out}");

    // The scale and status subresources.
    c.kubectl(&["scale", "crontab/my-new-cron-object", "--replicas=3"]);
    let replicas = get_field(&c, "ct", "my-new-cron-object", "{.spec.replicas}");
    assert_eq!(replicas, "3");
    c.kubectl(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    // A write to the object keeps status; status is not created with it.
    c.kubectl(&["label", "ct", "my-new-cron-object", "tier=batch"]);
    let status = get_field(&c, "ct", "my-new-cron-object", "{.status.replicas}");
    assert_eq!(status, "3");

    // Server-side apply takes the object's fields from the applied
    // configuration.
    let applied = CRONTAB.replace("my-awesome-cron-image", "another-image");
    let out = pipe(
        &mut c.kubectl_cmd(&["apply", "--server-side", "--force-conflicts", "-f", "-"]),
        &applied,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = get_field(&c, "ct", "my-new-cron-object", "{.spec.image}");
    assert_eq!(image, "another-image");

    // Its selectable field selects; other fields do not.
    let out = c.kubectl(&[
        "get",
        "ct",
        "--field-selector",
        "spec.image=another-image",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "crontab.stable.example.com/my-new-cron-object");
    let out = c.kubectl(&[
        "get",
        "ct",
        "--field-selector",
        "spec.image=nothing",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "");
    let err = c.kubectl_fails(&["get", "ct", "--field-selector", "spec.cronSpec=x"]);
    assert!(
        err.contains("field label not supported: spec.cronSpec"),
        "{err}"
    );

    // Its category puts it in `kubectl get all`.
    let out = c.kubectl(&["get", "all"]);
    assert!(
        out.contains("crontab.stable.example.com/my-new-cron-object"),
        "{out}"
    );

    // The other version serves the same objects, and writes through it
    // answer in it.
    let out = c.kubectl(&[
        "patch",
        "crontabs.v1beta1.stable.example.com",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"via":"v1beta1"}}}"#,
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(out, "stable.example.com/v1beta1");
    let version = get_field(
        &c,
        "crontabs.v1beta1.stable.example.com",
        "my-new-cron-object",
        "{.apiVersion}",
    );
    assert_eq!(version, "stable.example.com/v1beta1");

    // Deleting the definition deletes its objects and stops serving it.
    c.kubectl(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=60s",
    ]);
    let mut last = String::new();
    let gone = eventually(Duration::from_secs(30), || {
        let out = c.kubectl_output(&["get", "crontabs"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // kubectl names the type it no longer finds, or (from its cached
        // discovery) the list the server no longer serves.
        !out.status.success()
            && (last.contains("the server doesn't have a resource type")
                || last.contains("the server could not find the requested resource"))
    });
    assert!(gone, "{last}\n{}", c.kubectl(&["get", "crd", "-o", "yaml"]));
    // Created again, it starts empty.
    c.apply(CRONTAB_CRD);
    established(&c);
    let out = c.kubectl(&["get", "crontabs", "-A"]);
    assert!(!out.contains("my-new-cron-object"), "{out}");
}

/// `kubectl get <resource> <name> -o jsonpath=<path>`.
fn get_field(c: &Cluster, resource: &str, name: &str, path: &str) -> String {
    c.kubectl(&["get", resource, name, "-o", &format!("jsonpath={path}")])
}

fn pipe(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn apply_fails(c: &Cluster, manifest: &str) -> String {
    let out = pipe(&mut c.kubectl_cmd(&["apply", "-f", "-"]), manifest);
    assert!(!out.status.success(), "kubectl apply should have failed");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn conflicting_names_are_not_accepted() {
    let c = Cluster::start();
    c.apply(CRONTAB_CRD);
    established(&c);
    // Another definition in the group that wants the same plural.
    let other = CRONTAB_CRD
        .replace(
            "name: crontabs.stable.example.com",
            "name: crontabs.stable.example.com-x",
        )
        .replace("kind: CronTab", "kind: OtherTab")
        .replace("singular: crontab", "singular: othertab")
        .replace("shortNames: [ct]", "shortNames: [ot]");
    let err = apply_fails(&c, &other);
    assert!(
        err.contains("metadata.name: Invalid value: \"crontabs.stable.example.com-x\""),
        "{err}"
    );
    let other = CRONTAB_CRD
        .replace("crontabs", "cronjobs")
        .replace("singular: crontab", "singular: cronjob")
        .replace("shortNames: [ct]", "shortNames: [cj2]");
    c.apply(&other);
    let accepted = |c: &Cluster| {
        get_field(
            c,
            "crd",
            "cronjobs.stable.example.com",
            r#"{.status.conditions[?(@.type=="NamesAccepted")].status} {.status.conditions[?(@.type=="NamesAccepted")].message}"#,
        )
    };
    assert!(eventually(Duration::from_secs(10), || accepted(&c)
        .starts_with("False")));
    let out = accepted(&c);
    // The last name found in use is named, as kube-apiserver does.
    assert_eq!(out, "False \"CronTabList\" is already in use");
}

mod operator {
    //! An operator written with kube-rs: a `Greeting` controller that
    //! answers each greeting in its status and in a ConfigMap it owns.

    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::wait::{await_condition, conditions};
    use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::common::{eventually, Cluster};
    use super::get_field;

    #[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
    #[kube(
        group = "kedge.example.com",
        version = "v1",
        kind = "Greeting",
        namespaced,
        status = "GreetingStatus",
        shortname = "gr",
        printcolumn = r#"{"name":"Answer","type":"string","jsonPath":".status.answer"}"#
    )]
    pub struct GreetingSpec {
        name: String,
    }

    #[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
    pub struct GreetingStatus {
        answer: String,
    }

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct Error(#[from] kube::Error);

    async fn reconcile(g: Arc<Greeting>, client: Arc<kube::Client>) -> Result<Action, Error> {
        let ns = g.namespace().unwrap_or_default();
        let answer = format!("Hello, {}!", g.spec.name);
        let owner = g.controller_owner_ref(&()).unwrap();
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": format!("{}-answer", g.name_any()), "ownerReferences": [owner]},
            "data": {"answer": answer},
        });
        let params = PatchParams::apply("greeting-operator").force();
        Api::<ConfigMap>::namespaced((*client).clone(), &ns)
            .patch(
                &format!("{}-answer", g.name_any()),
                &params,
                &Patch::Apply(cm),
            )
            .await?;
        Api::<Greeting>::namespaced((*client).clone(), &ns)
            .patch_status(
                &g.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"answer": answer}})),
            )
            .await?;
        Ok(Action::await_change())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kube_rs_operator_reconciles_custom_objects() {
        let c = Cluster::start();
        let client = c.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &Greeting::crd())
            .await
            .unwrap();
        let established = await_condition(
            crds.clone(),
            "greetings.kedge.example.com",
            conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("established in time")
            .unwrap();

        let greetings: Api<Greeting> = Api::namespaced(client.clone(), "default");
        let controller = Controller::new(greetings.clone(), Default::default())
            .owns(
                Api::<ConfigMap>::namespaced(client.clone(), "default"),
                Default::default(),
            )
            .run(
                reconcile,
                |_, _, _| Action::requeue(Duration::from_secs(1)),
                Arc::new(client.clone()),
            )
            .for_each(|_| async {});
        let controller = tokio::spawn(controller);

        let g = Greeting::new(
            "world",
            GreetingSpec {
                name: "world".into(),
            },
        );
        greetings.create(&PostParams::default(), &g).await.unwrap();

        let c = Arc::new(c);
        let answered = {
            let c = c.clone();
            tokio::task::spawn_blocking(move || {
                eventually(Duration::from_secs(30), || {
                    get_field(&c, "gr", "world", "{.status.answer}") == "Hello, world!"
                })
            })
            .await
            .unwrap()
        };
        assert!(answered, "the operator wrote the status");
        let out = {
            let c = c.clone();
            tokio::task::spawn_blocking(move || c.kubectl(&["get", "greetings"]))
                .await
                .unwrap()
        };
        assert!(out.contains("ANSWER"), "{out}");
        assert!(out.contains("Hello, world!"), "{out}");
        let cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get("world-answer")
            .await
            .unwrap();
        assert_eq!(cm.data.unwrap()["answer"], "Hello, world!");
        assert_eq!(
            cm.metadata.owner_references.unwrap()[0].uid,
            g_uid(&greetings).await
        );
        controller.abort();

        // The garbage collector follows owner references to custom
        // resources: the greeting gone, its ConfigMap goes.
        greetings
            .delete("world", &Default::default())
            .await
            .unwrap();
        let cms = Api::<ConfigMap>::namespaced(client.clone(), "default");
        let mut gone = false;
        for _ in 0..300 {
            if cms.get_opt("world-answer").await.unwrap().is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(gone, "the owned ConfigMap outlived its Greeting");
    }

    async fn g_uid(api: &Api<Greeting>) -> String {
        api.get("world").await.unwrap().meta().uid.clone().unwrap()
    }
}

/// kopf, Python's operator framework, reconciling a custom resource of
/// kedge's unchanged: it finds the kind through discovery, watches it,
/// keeps its state in annotations, and writes status through the status
/// subresource.
#[test]
fn a_kopf_operator_reconciles_custom_objects() {
    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: tasks.kedge.example.com
spec:
  group: kedge.example.com
  scope: Namespaced
  names: {plural: tasks, singular: task, kind: Task}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;
    const OPERATOR: &str = r#"
import kopf

@kopf.on.create('kedge.example.com', 'v1', 'tasks')
def create_fn(spec, name, patch, **_):
    patch.status['answer'] = f"{name} has size {spec['size']}"
    return {'handled': True}
"#;
    let c = Cluster::start();
    c.apply(CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/tasks.kedge.example.com",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("operator.py");
    std::fs::write(&script, OPERATOR).unwrap();
    let log = std::fs::File::create(dir.path().join("kopf.log")).unwrap();
    let mut kopf = std::process::Command::new("python3")
        .args([
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--namespace",
            "default",
        ])
        .arg(&script)
        .env("KUBECONFIG", c.kubeconfig())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("python3 -m kopf (tests/run.sh installs kopf)");
    c.apply(
        "apiVersion: kedge.example.com/v1\nkind: Task\nmetadata: {name: t1}\nspec: {size: 3}\n",
    );
    let answered = eventually(Duration::from_secs(60), || {
        get_field(&c, "task", "t1", "{.status.answer}") == "t1 has size 3"
    });
    let _ = kopf.kill();
    let _ = kopf.wait();
    let log = std::fs::read_to_string(dir.path().join("kopf.log")).unwrap_or_default();
    assert!(answered, "kopf did not reconcile:\n{log}");
    let handled = get_field(&c, "task", "t1", "{.status.create_fn.handled}");
    assert_eq!(handled, "true", "{log}");
    // kopf keeps its state in an annotation of the object.
    let annotations = get_field(&c, "task", "t1", "{.metadata.annotations}");
    assert!(
        annotations.contains("kopf.zalando.org/last-handled-configuration"),
        "{annotations}"
    );
}
