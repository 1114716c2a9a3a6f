//! The generated API table (`src/apiserver/registry/generated.rs`) is what
//! its generator produces from the pinned crates, and says what Kubernetes says.

// The generator's code, reused to regenerate the table in memory.
#[path = "../examples/gen_api_tables.rs"]
#[allow(dead_code)]
mod gen_api_tables;

// The checked-in table, compiled here too so its facts can be tested.
#[path = "../src/apiserver/registry/generated.rs"]
#[allow(dead_code)]
mod generated;

use generated::{find, ListType, Scalar, Shape, KUBERNETES_VERSION, TYPES};

#[test]
fn table_is_current() {
    let generated = gen_api_tables::generate().expect("generating the table");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(gen_api_tables::OUTPUT);
    let checked_in = std::fs::read_to_string(&path).expect("reading the table");
    // Report the first differing line rather than two 300 kB strings.
    if let Some((n, (want, got))) = generated
        .text
        .lines()
        .zip(checked_in.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "{} is stale (line {}: expected {want:?}, found {got:?}); run `{}`",
            path.display(),
            n + 1,
            gen_api_tables::COMMAND
        );
    }
    assert!(
        generated.text == checked_in,
        "{} is stale (length differs); run `{}`",
        path.display(),
        gen_api_tables::COMMAND
    );
}

fn field(ty: &str, json: &str) -> &'static generated::Field {
    find(ty)
        .unwrap_or_else(|| panic!("no type {ty}"))
        .field(json)
        .unwrap_or_else(|| panic!("no field {ty}.{json}"))
}

#[test]
fn facts() {
    assert_eq!(KUBERNETES_VERSION, "1.35");
    assert!(TYPES.windows(2).all(|w| w[0].name < w[1].name));

    let containers = field("io.k8s.api.core.v1.PodSpec", "containers");
    assert_eq!(containers.tag, 2);
    assert_eq!(containers.patch_merge_key, "name");
    assert_eq!(containers.patch_strategy, "merge");
    assert_eq!(containers.list, ListType::Map(&["name"]));
    assert_eq!(
        containers.shape,
        Shape::RepeatedMessage("io.k8s.api.core.v1.Container")
    );

    let ports = field("io.k8s.api.core.v1.Container", "ports");
    assert_eq!(ports.list, ListType::Map(&["containerPort", "protocol"]));
    assert_eq!(ports.patch_merge_key, "containerPort");

    // Acronyms keep their case (prost's snake_case would give hostIpc).
    let host_ipc = field("io.k8s.api.core.v1.PodSpec", "hostIPC");
    assert_eq!(host_ipc.shape, Shape::Scalar(Scalar::Bool));
    assert!(find("io.k8s.api.core.v1.PodStatus")
        .and_then(|t| t.field("podIPs"))
        .is_some());

    let owners = field(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
    );
    assert_eq!(owners.patch_merge_key, "uid");
    assert_eq!(owners.list, ListType::Map(&["uid"]));

    let strategy = field("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
    assert_eq!(strategy.patch_strategy, "retainKeys");

    let volumes = field("io.k8s.api.core.v1.PodSpec", "volumes");
    assert_eq!(volumes.patch_strategy, "merge,retainKeys");
    assert_eq!(volumes.tag, 1);

    // Embedded Go structs: Volume's JSON carries VolumeSource's fields.
    let volume = find("io.k8s.api.core.v1.Volume").unwrap();
    let source = volume.field_by_tag(2).unwrap();
    assert!(source.inline && source.json == "volumeSource");
    field("io.k8s.api.core.v1.VolumeSource", "cephfs");
    field("io.k8s.api.core.v1.Volume", "hostPath");
    let ephemeral = field("io.k8s.api.core.v1.EphemeralContainer", "ports");
    assert_eq!(ephemeral.patch_merge_key, "containerPort");

    let selector = find("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector").unwrap();
    assert_eq!(selector.struct_type, "atomic");
    assert_eq!(
        field("io.k8s.api.core.v1.PodSpec", "nodeSelector").map_type,
        "atomic"
    );
    assert!(
        find("io.k8s.apimachinery.pkg.api.resource.Quantity")
            .unwrap()
            .custom_json
    );
    assert_eq!(
        field("io.k8s.api.core.v1.ResourceRequirements", "limits").shape,
        Shape::MapMessage("io.k8s.apimachinery.pkg.api.resource.Quantity")
    );
    let crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    assert_eq!(field(crd, "$ref").tag, 3);
    assert_eq!(
        field("io.k8s.api.rbac.v1.PolicyRule", "nonResourceURLs").shape,
        Shape::RepeatedScalar(Scalar::String)
    );

    // Every referenced message is in the table.
    for ty in TYPES {
        for f in ty.fields {
            if let Some(target) = f.shape.message() {
                assert!(find(target).is_some(), "{}.{} -> {target}", ty.name, f.json);
            }
        }
    }
}
