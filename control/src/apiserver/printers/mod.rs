//! Server-side printing for `kubectl get`: the `meta.k8s.io/v1` Table an API
//! server returns when a client asks for `as=Table`.
//!
//! Columns, cell formats and status computations follow Kubernetes' printers
//! (`pkg/printers/internalversion/printers.go`). The server always prints the
//! wide variant; kubectl hides columns with `priority > 0` unless `-o wide`.
//! Objects are read as stored JSON, so fields the real API server would have
//! defaulted (replicas, service type, port protocol, ...) are defaulted here.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::apiserver::registry::custom::columns::{self as custom_columns, Column};

/// A column of a printed table.
struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    desc: &'static str,
    priority: i64,
}

/// A column shown by default.
const fn col(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 1,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";
const SELECTOR_DESC: &str = "A label query over pods that should match the replica count. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    desc: NAME_DESC,
    priority: 0,
};
const AGE: Col = col("Age", "string", AGE_DESC);

const PODS: &[Col] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\"."),
];

const SERVICES: &[Col] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

const ENDPOINTS: &[Col] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

const DEPLOYMENTS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

const REPLICASETS: &[Col] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
    col("Current", "integer", "Replicas is the most recently observed number of replicas."),
    col("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", SELECTOR_DESC),
];

const REPLICATIONCONTROLLERS: &[Col] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
    col("Current", "integer", "Replicas is the most recently observed number of replicas."),
    col("Ready", "integer", "The number of ready replicas for this replication controller."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", "Selector is a label query over pods that should match the Replicas count."),
];

const DAEMONSETS: &[Col] = &[
    NAME,
    col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled."),
];

const STATEFULSETS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
];

const JOBS: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

const HORIZONTALPODAUTOSCALERS: &[Col] = &[
    NAME,
    col("Reference", "string", "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource."),
    col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
    col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
    col("MaxPods", "integer", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
    col("Replicas", "integer", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
    AGE,
];

const RESOURCEQUOTAS: &[Col] = &[
    NAME,
    AGE,
    col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
];

const RESOURCE_METRICS: &[Col] = &[
    NAME,
    col("CPU", "string", "CPU usage over the window"),
    col("Memory", "string", "Working set memory"),
    col(
        "Window",
        "string",
        "The window the CPU usage is measured over",
    ),
];

const COMPONENTSTATUSES: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

const CRONJOBS: &[Col] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false."),
    col("Active", "integer", "A list of pointers to currently running jobs."),
    col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
    AGE,
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", "A label query over pods that should match the pod count."),
];

const NAMESPACES: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const NODES: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node."),
    wide("External-IP", "string", "List of addresses reachable to the node."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

const CONFIGMAPS: &[Col] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

const SECRETS: &[Col] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

const SERVICEACCOUNTS: &[Col] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

const EVENTS: &[Col] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        desc: NAME_DESC,
        priority: 1,
    },
];

const INGRESSES: &[Col] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

const INGRESSCLASSES: &[Col] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

const ENDPOINTSLICES: &[Col] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

const LEASES: &[Col] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

const CERTIFICATESIGNINGREQUESTS: &[Col] = &[
    NAME,
    AGE,
    col("SignerName", "string", "Name of the signer"),
    col("Requestor", "string", "Name of the requestor"),
    col(
        "RequestedDuration",
        "string",
        "Requested duration of the certificate",
    ),
    col("Condition", "string", "The condition of the request"),
];

const ROLEBINDINGS: &[Col] = &[
    NAME,
    col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
];

const CLUSTERROLEBINDINGS: &[Col] = &[
    NAME,
    col(
        "Role",
        "string",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    ),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

const CONTROLLERREVISIONS: &[Col] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col(
        "Revision",
        "integer",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

const PODDISRUPTIONBUDGETS: &[Col] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

const PERSISTENTVOLUMES: &[Col] = &[
    NAME,
    col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
    col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    col("StorageClass", "string", "storageClassName is the name of StorageClass to which this persistent volume belongs."),
    col("VolumeAttributesClass", "string", "Name of VolumeAttributesClass to which this persistent volume belongs."),
    col("Reason", "string", "reason is a brief CamelCase string that describes any failure."),
    AGE,
    wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
];

const PERSISTENTVOLUMECLAIMS: &[Col] = &[
    NAME,
    col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
    col("StorageClass", "string", "storageClassName is the name of the StorageClass required by the claim."),
    col("VolumeAttributesClass", "string", "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    AGE,
    wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim."),
];

const STORAGECLASSES: &[Col] = &[
    NAME,
    col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
    col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
    col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
    col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

const PRIORITYCLASSES: &[Col] = &[
    NAME,
    col("Value", "integer", "value represents the integer value of this priority class."),
    col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
    AGE,
    col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority."),
];

const NETWORKPOLICIES: &[Col] = &[
    NAME,
    col(
        "Pod-Selector",
        "string",
        "podSelector selects the pods to which this NetworkPolicy object applies.",
    ),
    AGE,
];

/// Kubernetes' default for types without a printer: the raw creation time.
const CREATED_AT: &[Col] = &[
    NAME,
    Col {
        name: "Created At",
        ty: "date",
        format: "",
        desc: AGE_DESC,
        priority: 0,
    },
];

const FALLBACK: &[Col] = &[NAME, AGE];

/// Built-in resources that have no printer and so get `Created At`.
fn prints_created_at(resource: &str) -> bool {
    matches!(
        resource,
        "roles" | "clusterroles" | "limitranges" | "customresourcedefinitions"
    )
}

fn columns(resource: &str) -> &'static [Col] {
    match resource {
        "pods" => PODS,
        "services" => SERVICES,
        "endpoints" => ENDPOINTS,
        "deployments" => DEPLOYMENTS,
        "replicasets" => REPLICASETS,
        "replicationcontrollers" => REPLICATIONCONTROLLERS,
        "daemonsets" => DAEMONSETS,
        "statefulsets" => STATEFULSETS,
        "jobs" => JOBS,
        "cronjobs" => CRONJOBS,
        "horizontalpodautoscalers" => HORIZONTALPODAUTOSCALERS,
        "componentstatuses" => COMPONENTSTATUSES,
        // The resource metrics, by singular: their plurals are `pods` and
        // `nodes`.
        "podmetrics" | "nodemetrics" => RESOURCE_METRICS,
        "resourcequotas" => RESOURCEQUOTAS,
        "namespaces" => NAMESPACES,
        "nodes" => NODES,
        "configmaps" => CONFIGMAPS,
        "secrets" => SECRETS,
        "serviceaccounts" => SERVICEACCOUNTS,
        "events" => EVENTS,
        "ingresses" => INGRESSES,
        "ingressclasses" => INGRESSCLASSES,
        "endpointslices" => ENDPOINTSLICES,
        "leases" => LEASES,
        "rolebindings" => ROLEBINDINGS,
        "certificatesigningrequests" => CERTIFICATESIGNINGREQUESTS,
        "clusterrolebindings" => CLUSTERROLEBINDINGS,
        "poddisruptionbudgets" => PODDISRUPTIONBUDGETS,
        "controllerrevisions" => CONTROLLERREVISIONS,
        "storageclasses" => STORAGECLASSES,
        "persistentvolumes" => PERSISTENTVOLUMES,
        "persistentvolumeclaims" => PERSISTENTVOLUMECLAIMS,
        "priorityclasses" => PRIORITYCLASSES,
        "networkpolicies" => NETWORKPOLICIES,
        r if prints_created_at(r) => CREATED_AT,
        _ => FALLBACK,
    }
}

/// Column definitions for a resource (plural name, e.g. "pods", "deployments").
pub fn column_definitions(resource: &str) -> Vec<Value> {
    columns(resource)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.desc,
                "priority": c.priority,
            })
        })
        .collect()
}

/// Cells of one row for an object (the full JSON object as stored). `now` for ages.
pub fn row_cells(resource: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match resource {
        "pods" => pod_cells(obj, now),
        "services" => service_cells(obj, now),
        "endpoints" => endpoints_cells(obj, now),
        "deployments" => deployment_cells(obj, now),
        "replicasets" | "replicationcontrollers" => replica_set_cells(resource, obj, now),
        "daemonsets" => daemon_set_cells(obj, now),
        "statefulsets" => stateful_set_cells(obj, now),
        "jobs" => job_cells(obj, now),
        "cronjobs" => cron_job_cells(obj, now),
        "horizontalpodautoscalers" => hpa_cells(obj, now),
        "resourcequotas" => {
            // `used/hard` per resource, limits apart, as kubectl shows.
            let hard = get(obj, &["status", "hard"]).and_then(Value::as_object);
            let used = get(obj, &["status", "used"]);
            let (mut request, mut limit) = (Vec::new(), Vec::new());
            for (k, h) in hard.into_iter().flatten() {
                let u = used.and_then(|u| u[k].as_str()).unwrap_or("0");
                let cell = format!("{k}: {u}/{}", h.as_str().unwrap_or(""));
                if k.starts_with("limits.") {
                    limit.push(cell);
                } else {
                    request.push(cell);
                }
            }
            vec![
                name(obj),
                age(obj, now),
                request.join(", ").into(),
                limit.join(", ").into(),
            ]
        }
        "podmetrics" | "nodemetrics" => {
            // A pod's is its containers' summed.
            let usages: Vec<&Value> = match get(obj, &["usage"]) {
                Some(u) => vec![u],
                None => arr(obj, &["containers"])
                    .iter()
                    .map(|c| &c["usage"])
                    .collect(),
            };
            let sum = |resource: &str| -> i128 {
                usages
                    .iter()
                    .filter_map(|u| u[resource].as_str())
                    .filter_map(|q| kedge_config::quantity::parse_quantity(q).ok())
                    .map(|q| q.as_nanos())
                    .sum()
            };
            vec![
                name(obj),
                format!("{}m", sum("cpu") / 1_000_000).into(),
                format!("{}Mi", sum("memory") / 1_000_000_000 / (1 << 20)).into(),
                s(obj, &["window"]).into(),
            ]
        }
        "componentstatuses" => {
            // kubectl's words: Healthy, or Unhealthy with the error.
            let c = arr(obj, &["conditions"])
                .iter()
                .find(|c| c["type"] == "Healthy")
                .cloned()
                .unwrap_or(Value::Null);
            let healthy = c["status"] == "True";
            vec![
                name(obj),
                if healthy { "Healthy" } else { "Unhealthy" }.into(),
                c["message"].as_str().unwrap_or("").into(),
                c["error"].as_str().unwrap_or("").into(),
            ]
        }
        "namespaces" => {
            // A namespace is created Active by the server's create strategy.
            let phase = or_default(s(obj, &["status", "phase"]), "Active");
            vec![name(obj), phase.into(), age(obj, now)]
        }
        "nodes" => node_cells(obj, now),
        "configmaps" => {
            let n = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
            vec![name(obj), n.into(), age(obj, now)]
        }
        "secrets" => {
            let ty = or_default(s(obj, &["type"]), "Opaque");
            vec![
                name(obj),
                ty.into(),
                secret_data_len(obj).into(),
                age(obj, now),
            ]
        }
        "serviceaccounts" => {
            let n = arr(obj, &["secrets"]).len() as i64;
            vec![name(obj), n.into(), age(obj, now)]
        }
        "events" => event_cells(obj, now),
        "ingresses" => ingress_cells(obj, now),
        "ingressclasses" => ingress_class_cells(obj, now),
        "endpointslices" => endpoint_slice_cells(obj, now),
        "leases" => {
            let holder = s(obj, &["spec", "holderIdentity"]);
            vec![name(obj), holder.into(), age(obj, now)]
        }
        "rolebindings" | "clusterrolebindings" => role_binding_cells(obj, now),
        "certificatesigningrequests" => csr_cells(obj, now),
        "poddisruptionbudgets" => pdb_cells(obj, now),
        "controllerrevisions" => controller_revision_cells(obj, now),
        "storageclasses" => storage_class_cells(obj, now),
        "persistentvolumes" => persistent_volume_cells(obj, now),
        "persistentvolumeclaims" => persistent_volume_claim_cells(obj, now),
        "priorityclasses" => vec![
            name(obj),
            int(obj, &["value"]).into(),
            get(obj, &["globalDefault"])
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .into(),
            age(obj, now),
            s(obj, &["preemptionPolicy"]).into(),
        ],
        "networkpolicies" => {
            let sel = format_label_selector(get(obj, &["spec", "podSelector"]));
            vec![name(obj), sel.into(), age(obj, now)]
        }
        r if prints_created_at(r) => {
            // Formatted like Go's time.RFC3339 of the UTC time, zero time if absent.
            let created = ts(obj, &["metadata", "creationTimestamp"])
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![name(obj), created.into()]
        }
        _ => vec![name(obj), age(obj, now)],
    }
}

/// Which columns a table has.
#[derive(Clone, Copy)]
pub enum Printer<'a> {
    /// A built-in kind's, by its plural.
    Builtin(&'a str),
    /// A custom resource's printer columns.
    Custom(&'a [Column]),
}

impl<'a> Printer<'a> {
    /// The printer of `plural`, or of a custom resource's columns.
    pub fn of(plural: &'a str, custom: Option<&'a [Column]>) -> Self {
        match custom {
            Some(columns) => Printer::Custom(columns),
            None => Printer::Builtin(plural),
        }
    }
}

/// Build a whole meta.k8s.io/v1 Table from objects; include_object: "Metadata" (default: row "object" is a PartialObjectMetadata {kind:"PartialObjectMetadata",apiVersion:"meta.k8s.io/v1",metadata:{...}}), "Object" (the full object) or "None".
pub fn table(
    printer: Printer<'_>,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: &str,
    with_columns: bool,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            let cells = match printer {
                Printer::Custom(columns) => {
                    let mut cells = vec![name(obj)];
                    cells.extend(custom_columns::cells(columns, obj, now));
                    cells
                }
                Printer::Builtin(resource) => row_cells(resource, obj, now),
            };
            row.insert("cells".into(), Value::Array(cells));
            if let Printer::Builtin(resource) = printer {
                if let Some(conditions) = row_conditions(resource, obj) {
                    row.insert("conditions".into(), conditions);
                }
            }
            let object = match include_object {
                "Object" => obj.clone(),
                // Go serialises an empty RawExtension as null.
                "None" => Value::Null,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            row.insert("object".into(), object);
            Value::Object(row)
        })
        .collect();

    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    // Watch events after the first omit the columns; Go encodes the nil slice as null.
    let column_definitions = if with_columns {
        Value::Array(match printer {
            Printer::Custom(columns) => custom_columns::definitions(columns),
            Printer::Builtin(resource) => column_definitions(resource),
        })
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// Kubernetes' duration.HumanDuration ("5s", "3m20s", "2d3h", "45d", "3y20d" ...) of the age since a RFC3339 timestamp ("<unknown>" if missing).
#[cfg(test)]
pub fn human_age(creation_timestamp: Option<&str>, now: Timestamp) -> String {
    match creation_timestamp.and_then(parse_ts) {
        Some(t) => since(t, now),
        None => "<unknown>".to_string(),
    }
}

/// Go's duration.HumanDuration for a span given in nanoseconds.
fn human_duration(nanos: i128) -> String {
    let secs = (nanos / 1_000_000_000) as i64;
    // Up to two seconds in the future counts as now, to tolerate clock skew.
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn since(t: Timestamp, now: Timestamp) -> String {
    human_duration(now.as_nanosecond() - t.as_nanosecond())
}

fn since_opt(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| since(t, now))
}

fn parse_ts(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

// ---- JSON access helpers: absent and null fields read as empty/zero. ----

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn has(v: &Value, path: &[&str]) -> bool {
    get(v, path).is_some()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn map_len(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_object).map_or(0, Map::len) as i64
}

/// Keys of data plus stringData, which the server merges into data on write.
fn secret_data_len(obj: &Value) -> i64 {
    let data = get(obj, &["data"]).and_then(Value::as_object);
    let extra = get(obj, &["stringData"])
        .and_then(Value::as_object)
        .map_or(0, |m| {
            m.keys()
                .filter(|k| !data.is_some_and(|d| d.contains_key(*k)))
                .count()
        });
    data.map_or(0, Map::len) as i64 + extra as i64
}

fn ts(v: &Value, path: &[&str]) -> Option<Timestamp> {
    get(v, path).and_then(Value::as_str).and_then(parse_ts)
}

fn or_default<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

fn name(obj: &Value) -> Value {
    s(obj, &["metadata", "name"]).into()
}

fn age(obj: &Value, now: Timestamp) -> Value {
    since_opt(ts(obj, &["metadata", "creationTimestamp"]), now).into()
}

/// `k=v,k2=v2` sorted by key, `<none>` when empty (labels.FormatLabels).
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// The string form of a metav1.LabelSelector (requirements sorted by key), or
/// `Err` when the selector cannot be converted.
fn label_selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let key = s(expr, &["key"]);
        let mut values: Vec<&str> = arr(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match s(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// metav1.FormatLabelSelector: `<none>` when empty, `<error>` when invalid.
fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector_string(sel) {
        Ok(text) if text.is_empty() => "<none>".to_string(),
        Ok(text) => text,
        Err(()) => "<error>".to_string(),
    }
}

/// Container names and images, each comma-joined.
fn layout_containers(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn template_containers(obj: &Value) -> &[Value] {
    arr(obj, &["spec", "template", "spec", "containers"])
}

/// `list` joined, with `+ N more...` past `max` entries, `<unset>` when empty.
fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

// ---- Per-resource printers. ----

fn pod_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = arr(obj, &["spec", "initContainers"]);
    let is_sidecar = |container_name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, &["name"]) == container_name && s(c, &["restartPolicy"]) == "Always")
    };
    let conditions = arr(obj, &["status", "conditions"]);
    let condition_true = |ty: &str| {
        conditions
            .iter()
            .any(|c| s(c, &["type"]) == ty && s(c, &["status"]) == "True")
    };

    let sidecars = init_specs
        .iter()
        .filter(|c| s(c, &["restartPolicy"]) == "Always")
        .count();
    let total = arr(obj, &["spec", "containers"]).len() + sidecars;
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = s(obj, &["status", "phase"]);
    let mut reason = or_default(s(obj, &["status", "reason"]), phase).to_string();
    if conditions
        .iter()
        .any(|c| s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut initializing = false;
    for (i, status) in arr(obj, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int(status, &["restartCount"]);
        let finished = ts(status, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        last_restart = last_restart.max(finished);
        let sidecar = is_sidecar(s(status, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(finished);
        }
        let terminated = get(status, &["state", "terminated"]);
        let waiting_reason = s(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && get(status, &["started"]).and_then(Value::as_bool) == Some(true) {
            if get(status, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            let term_reason = s(t, &["reason"]);
            if !term_reason.is_empty() {
                format!("Init:{term_reason}")
            } else if int(t, &["signal"]) != 0 {
                format!("Init:Signal:{}", int(t, &["signal"]))
            } else {
                format!("Init:ExitCode:{}", int(t, &["exitCode"]))
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Earlier containers take precedence, so walk backwards and overwrite.
        for status in arr(obj, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(status, &["restartCount"]);
            last_restart = last_restart.max(ts(status, &["lastState", "terminated", "finishedAt"]));
            let waiting_reason = s(status, &["state", "waiting", "reason"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = get(status, &["state", "terminated"]) {
                let term_reason = s(t, &["reason"]);
                reason = if !term_reason.is_empty() {
                    term_reason.to_string()
                } else if int(t, &["signal"]) != 0 {
                    format!("Signal:{}", int(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(t, &["exitCode"]))
                };
            } else if get(status, &["ready"]).and_then(Value::as_bool) == Some(true)
                && has(status, &["state", "running"])
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if has(obj, &["metadata", "deletionTimestamp"]) {
        if s(obj, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(t, now)),
        _ => restarts.to_string(),
    };

    // Stored v1 pods may carry only the legacy singular podIP.
    let pod_ip = arr(obj, &["status", "podIPs"])
        .first()
        .map(|p| s(p, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(obj, &["status", "podIP"]));
    let gates = arr(obj, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passed = gates
            .iter()
            .filter(|g| {
                let ty = s(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| s(c, &["type"]) == ty)
                    .is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    vec![
        name(obj),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_text.into(),
        age(obj, now),
        or_default(pod_ip, "<none>").into(),
        or_default(s(obj, &["spec", "nodeName"]), "<none>").into(),
        or_default(s(obj, &["status", "nominatedNodeName"]), "<none>").into(),
        readiness_gates.into(),
    ]
}

/// Sorted, de-duplicated IPs (or hostnames) of load-balancer ingress points.
fn load_balancer_addresses(obj: &Value) -> String {
    let mut addrs: Vec<&str> = arr(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| or_default(s(i, &["ip"]), s(i, &["hostname"])))
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.join(",")
}

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ty = or_default(s(obj, &["spec", "type"]), "ClusterIP");
    let cluster_ip = arr(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(obj, &["spec", "clusterIP"]));
    let external: Vec<&str> = arr(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match ty {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(obj);
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|a| !a.is_empty()).collect();
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => s(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(obj, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = or_default(s(p, &["protocol"]), "TCP");
            let port = int(p, &["port"]);
            match int(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        ty.into(),
        or_default(cluster_ip, "<none>").into(),
        external_ip.into(),
        ports.into(),
        age(obj, now),
        format_labels(get(obj, &["spec", "selector"])).into(),
    ]
}

/// Go's net.JoinHostPort: IPv6 literals get brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = arr(obj, &["subsets"]);
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut count = 0usize;
        for subset in subsets {
            let addresses = arr(subset, &["addresses"]);
            let ports = arr(subset, &["ports"]);
            if ports.is_empty() {
                // Headless services may have no ports.
                count += addresses.len();
                for a in addresses {
                    if list.len() < MAX {
                        list.push(s(a, &["ip"]).to_string());
                    }
                }
                continue;
            }
            for port in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() < MAX {
                        list.push(join_host_port(s(a, &["ip"]), int(port, &["port"])));
                    }
                }
            }
        }
        let joined = list.join(",");
        if count > MAX {
            format!("{joined} + {} more...", count - MAX)
        } else {
            joined
        }
    };
    vec![name(obj), text.into(), age(obj, now)]
}

/// spec.replicas, which the API server defaults to 1.
fn desired_replicas(obj: &Value) -> i64 {
    get(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_containers(obj));
    let selector = label_selector_string(get(obj, &["spec", "selector"]))
        .unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        name(obj),
        format!(
            "{}/{}",
            int(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        int(obj, &["status", "updatedReplicas"]).into(),
        int(obj, &["status", "availableReplicas"]).into(),
        age(obj, now),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

fn replica_set_cells(resource: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_containers(obj));
    let selector = if resource == "replicationcontrollers" {
        format_labels(get(obj, &["spec", "selector"]))
    } else {
        format_label_selector(get(obj, &["spec", "selector"]))
    };
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int(obj, &["status", "replicas"]).into(),
        int(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_containers(obj));
    vec![
        name(obj),
        int(obj, &["status", "desiredNumberScheduled"]).into(),
        int(obj, &["status", "currentNumberScheduled"]).into(),
        int(obj, &["status", "numberReady"]).into(),
        int(obj, &["status", "updatedNumberScheduled"]).into(),
        int(obj, &["status", "numberAvailable"]).into(),
        format_labels(get(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now),
        names.into(),
        images.into(),
        format_label_selector(get(obj, &["spec", "selector"])).into(),
    ]
}

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_containers(obj));
    vec![
        name(obj),
        format!(
            "{}/{}",
            int(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        age(obj, now),
        names.into(),
        images.into(),
    ]
}

/// Whether the first condition of type `ty` has status True.
fn job_condition(obj: &Value, ty: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| s(c, &["type"]) == ty)
        .is_some_and(|c| s(c, &["status"]) == "True")
}

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(obj, &["status", "succeeded"]);
    let completions = get(obj, &["spec", "completions"]).and_then(Value::as_i64);
    let parallelism = get(obj, &["spec", "parallelism"]).and_then(Value::as_i64);
    let completions_text = match (completions, parallelism) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        // Defaulting sets completions to 1 when neither field is given.
        (None, None) => format!("{succeeded}/1"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, Some(_)) => format!("{succeeded}/1"),
    };
    let duration = match (
        ts(obj, &["status", "startTime"]),
        ts(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(start, now),
        (Some(start), Some(end)) => human_duration(end.as_nanosecond() - start.as_nanosecond()),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if has(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = layout_containers(template_containers(obj));
    vec![
        name(obj),
        status.into(),
        completions_text.into(),
        duration.into(),
        age(obj, now),
        names.into(),
        images.into(),
        format_label_selector(get(obj, &["spec", "selector"])).into(),
    ]
}

/// An HPA's row, as kubectl prints it: `Deployment/web`, targets as
/// `cpu: 250%/50%` (`<unknown>` before the first measurement).
fn hpa_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        s(obj, &["spec", "scaleTargetRef", "kind"]),
        s(obj, &["spec", "scaleTargetRef", "name"])
    );
    let current = arr(obj, &["status", "currentMetrics"]);
    let targets: Vec<String> = arr(obj, &["spec", "metrics"])
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let kind = m["type"].as_str().unwrap_or("");
            let source = match kind {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unsupported>".to_string(),
            };
            let target = &m[source]["target"];
            let now_at = current.get(i).map(|c| &c[source]["current"]);
            let (have, want) = match target["type"].as_str() {
                Some("Utilization") => (
                    now_at
                        .and_then(|c| c["averageUtilization"].as_i64())
                        .map(|u| format!("{u}%")),
                    format!("{}%", target["averageUtilization"].as_i64().unwrap_or(0)),
                ),
                _ => (
                    now_at
                        .and_then(|c| c["averageValue"].as_str())
                        .map(String::from),
                    target["averageValue"].as_str().unwrap_or("").to_string(),
                ),
            };
            format!(
                "{}: {}/{want}",
                m[source]["name"].as_str().unwrap_or(""),
                have.as_deref().unwrap_or("<unknown>")
            )
        })
        .collect();
    let min = get(obj, &["spec", "minReplicas"])
        .and_then(Value::as_i64)
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(obj),
        reference.into(),
        if targets.is_empty() {
            "<none>".to_string()
        } else {
            targets.join(", ")
        }
        .into(),
        min.into(),
        get(obj, &["spec", "maxReplicas"])
            .cloned()
            .unwrap_or(json!(0)),
        get(obj, &["status", "currentReplicas"])
            .cloned()
            .unwrap_or(json!(0)),
        age(obj, now),
    ]
}

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match ts(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(t, now),
        None => "<none>".to_string(),
    };
    let time_zone = get(obj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    // suspend defaults to false on the server.
    let suspend = match get(obj, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        _ => "False",
    };
    let template = get(obj, &["spec", "jobTemplate"]).unwrap_or(&Value::Null);
    let (names, images) = layout_containers(template_containers(template));
    vec![
        name(obj),
        s(obj, &["spec", "schedule"]).into(),
        time_zone.into(),
        suspend.into(),
        (arr(obj, &["status", "active"]).len() as i64).into(),
        last_schedule.into(),
        age(obj, now),
        names.into(),
        images.into(),
        format_label_selector(get(template, &["spec", "selector"])).into(),
    ]
}

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // The last condition of a type wins, as in the Go map build-up.
    if let Some(ready) = arr(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| s(c, &["type"]) == "Ready")
    {
        status.push(if s(ready, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        status.push("Unknown");
    }
    if get(obj, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = get(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v);
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let address = |ty: &str| {
        arr(obj, &["status", "addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == ty)
            .map_or("<none>", |a| s(a, &["address"]))
    };
    let info = |field: &str| or_default(s(obj, &["status", "nodeInfo", field]), "<unknown>");
    vec![
        name(obj),
        status.join(",").into(),
        roles.into(),
        age(obj, now),
        s(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

fn event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // events.k8s.io/v1 names the same fields differently; read either shape.
    let field = |core: &'static str, events_api: &'static str| {
        get(obj, &[core]).or_else(|| get(obj, &[events_api]))
    };
    let time = |core, events_api| {
        field(core, events_api)
            .and_then(Value::as_str)
            .and_then(parse_ts)
    };
    let text = |v: Option<&Value>, key: &str| v.map_or("", |v| s(v, &[key])).to_string();

    let first_seen = match time("firstTimestamp", "deprecatedFirstTimestamp") {
        Some(t) => since(t, now),
        None => since_opt(ts(obj, &["eventTime"]), now),
    };
    let mut last_seen = match time("lastTimestamp", "deprecatedLastTimestamp") {
        Some(t) => since(t, now),
        None => first_seen.clone(),
    };
    let mut count = field("count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if has(obj, &["series"]) {
        last_seen = since_opt(ts(obj, &["series", "lastObservedTime"]), now);
        count = int(obj, &["series", "count"]);
    } else if count == 0 {
        // Singleton events of the events.k8s.io API carry no count.
        count = 1;
    }
    let involved = field("involvedObject", "regarding");
    let kind = text(involved, "kind").to_lowercase();
    let involved_name = text(involved, "name");
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let source = field("source", "deprecatedSource");
    let component = text(source, "component");
    let component = or_default(&component, s(obj, &["reportingComponent"]));
    let component = or_default(component, s(obj, &["reportingController"]));
    let instance = text(source, "host");
    let instance = or_default(&instance, s(obj, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    let message = field("message", "note")
        .and_then(Value::as_str)
        .unwrap_or("");
    vec![
        last_seen.into(),
        s(obj, &["type"]).into(),
        s(obj, &["reason"]).into(),
        target.into(),
        text(involved, "fieldPath").into(),
        source.into(),
        message.trim().into(),
        first_seen.into(),
        count.into(),
        name(obj),
    ]
}

fn ingress_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let class = get(obj, &["spec", "ingressClassName"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let rules = arr(obj, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = s(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if arr(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        class.into(),
        hosts.into(),
        load_balancer_addresses(obj).into(),
        ports.into(),
        age(obj, now),
    ]
}

fn ingress_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match get(obj, &["spec", "parameters"]) {
        None => "<none>".to_string(),
        Some(p) => {
            let kind = s(p, &["kind"]);
            let group = get(p, &["apiGroup"])
                .and_then(Value::as_str)
                .map_or(String::new(), |g| format!(".{g}"));
            format!("{kind}{group}/{}", s(p, &["name"]))
        }
    };
    vec![
        name(obj),
        s(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now),
    ]
}

fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let ports: Vec<String> = arr(obj, &["ports"])
        .iter()
        .map(|p| match get(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => get(p, &["name"])
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    let port_count = ports.len();
    let addresses: Vec<String> = arr(obj, &["endpoints"])
        .iter()
        .flat_map(|e| arr(e, &["addresses"]))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let address_count = addresses.len();
    let first = |list: Vec<String>| list.into_iter().take(MAX).collect::<Vec<_>>();
    vec![
        name(obj),
        s(obj, &["addressType"]).into(),
        list_with_more(&first(ports), port_count, MAX).into(),
        list_with_more(&first(addresses), address_count, MAX).into(),
        age(obj, now),
    ]
}

/// A CertificateSigningRequest's row: its conditions in order and
/// `Issued` once it has a certificate, or `Pending`.
fn csr_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut condition: Vec<String> = arr(obj, &["status", "conditions"])
        .iter()
        .map(|c| s(c, &["type"]).to_string())
        .collect();
    if !s(obj, &["status", "certificate"]).is_empty() {
        condition.push("Issued".into());
    }
    let condition = if condition.is_empty() {
        "Pending".to_string()
    } else {
        condition.join(",")
    };
    let duration = match get(obj, &["spec", "expirationSeconds"]).and_then(Value::as_i64) {
        Some(secs) => human_duration(i128::from(secs) * 1_000_000_000),
        None => "<none>".to_string(),
    };
    vec![
        name(obj),
        age(obj, now),
        s(obj, &["spec", "signerName"]).into(),
        s(obj, &["spec", "username"]).into(),
        duration.into(),
        condition.into(),
    ]
}

fn role_binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in arr(obj, &["subjects"]) {
        let subject_name = s(subject, &["name"]);
        match s(subject, &["kind"]) {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", s(subject, &["namespace"])))
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(obj),
        format!(
            "{}/{}",
            s(obj, &["roleRef", "kind"]),
            s(obj, &["roleRef", "name"])
        )
        .into(),
        age(obj, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

/// `daemonset.apps/web` for the controller that owns the revision.
fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = get(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| {
            let group = r["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let kind = r["kind"].as_str().unwrap_or("").to_ascii_lowercase();
            let name = r["name"].as_str().unwrap_or("");
            if group.is_empty() {
                format!("{kind}/{name}")
            } else {
                format!("{kind}.{group}/{name}")
            }
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(obj),
        controller.into(),
        int(obj, &["revision"]).into(),
        age(obj, now),
    ]
}

fn pdb_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // An IntOrString prints as its number or its string.
    let int_or_string = |field: &str| match get(obj, &["spec", field]) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    };
    vec![
        name(obj),
        int_or_string("minAvailable").into(),
        int_or_string("maxUnavailable").into(),
        int(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now),
    ]
}

/// `RWO,RWX`: access modes as kubectl abbreviates them.
fn access_modes(modes: &[Value]) -> String {
    modes
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn persistent_volume_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match (
        s(obj, &["spec", "claimRef", "namespace"]).to_string(),
        s(obj, &["spec", "claimRef", "name"]).to_string(),
    ) {
        (ns, name) if !name.is_empty() => format!("{ns}/{name}"),
        _ => String::new(),
    };
    vec![
        name(obj),
        s(obj, &["spec", "capacity", "storage"]).to_string().into(),
        access_modes(arr(obj, &["spec", "accessModes"])).into(),
        s(obj, &["spec", "persistentVolumeReclaimPolicy"])
            .to_string()
            .into(),
        s(obj, &["status", "phase"]).to_string().into(),
        claim.into(),
        s(obj, &["spec", "storageClassName"]).to_string().into(),
        or_unset(s(obj, &["spec", "volumeAttributesClassName"]).to_string()).into(),
        s(obj, &["status", "reason"]).to_string().into(),
        age(obj, now),
        s(obj, &["spec", "volumeMode"]).to_string().into(),
    ]
}

fn persistent_volume_claim_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Capacity and modes once bound, from status.
    let bound = s(obj, &["status", "phase"]) == "Bound";
    let (capacity, modes) = if bound {
        (
            s(obj, &["status", "capacity", "storage"]).to_string(),
            access_modes(arr(obj, &["status", "accessModes"])),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        name(obj),
        s(obj, &["status", "phase"]).to_string().into(),
        s(obj, &["spec", "volumeName"]).to_string().into(),
        capacity.into(),
        modes.into(),
        s(obj, &["spec", "storageClassName"]).to_string().into(),
        or_unset(s(obj, &["spec", "volumeAttributesClassName"]).to_string()).into(),
        age(obj, now),
        s(obj, &["spec", "volumeMode"]).to_string().into(),
    ]
}

fn or_unset(s: String) -> String {
    if s.is_empty() {
        "<unset>".into()
    } else {
        s
    }
}

fn storage_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| s(obj, &["metadata", "annotations", *key]) == "true");
    let mut display = s(obj, &["metadata", "name"]).to_string();
    if is_default {
        display.push_str(" (default)");
    }
    vec![
        display.into(),
        s(obj, &["provisioner"]).into(),
        or_default(s(obj, &["reclaimPolicy"]), "Delete").into(),
        or_default(s(obj, &["volumeBindingMode"]), "Immediate").into(),
        get(obj, &["allowVolumeExpansion"])
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .into(),
        age(obj, now),
    ]
}

/// Row conditions: pods that ran to completion are marked Completed.
fn row_conditions(resource: &str, obj: &Value) -> Option<Value> {
    if resource != "pods" {
        return None;
    }
    let (reason, message) = match s(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-01-10T12:00:00Z".parse().unwrap()
    }

    /// A timestamp `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        let t = Timestamp::from_second(now().as_second() - secs).unwrap();
        t.to_string()
    }

    fn cells(resource: &str, obj: Value) -> Vec<Value> {
        row_cells(resource, &obj, now())
    }

    fn names(resource: &str) -> Vec<String> {
        column_definitions(resource)
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn priorities(resource: &str) -> Vec<i64> {
        column_definitions(resource)
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn human_duration_matches_go() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (45 * 86400, "45d"),
            (729 * 86400, "729d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (2 * 365 * 86400, "2y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                human_duration(i128::from(*secs) * 1_000_000_000),
                *want,
                "{secs}s"
            );
        }
        assert_eq!(human_age(Some(ago(200).as_str()), now()), "3m20s");
        assert_eq!(human_age(None, now()), "<unknown>");
        assert_eq!(human_age(Some("garbage"), now()), "<unknown>");
    }

    #[test]
    fn pod_running_with_restarts() {
        assert_eq!(
            names("pods"),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(priorities("pods"), [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(column_definitions("pods")[0]["format"], "name");
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(3 * 3600 + 300)},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.5",
                "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": ago(300)}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
                }]
            }
        });
        assert_eq!(
            cells("pods", pod),
            [
                json!("web-1"),
                json!("1/1"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("3h5m"),
                json!("10.244.0.5"),
                json!("node-a"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_status_variants() {
        let status = |pod: Value| cells("pods", pod)[2].as_str().unwrap().to_string();
        let crash = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]}
        });
        let row = cells("pods", crash.clone());
        assert_eq!(row[1], "1/2");
        assert_eq!(row[3], "4");
        assert_eq!(status(crash), "CrashLoopBackOff");

        let creating = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}
        });
        assert_eq!(status(creating), "ContainerCreating");

        let init = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "i", "restartCount": 0, "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}
        });
        assert_eq!(status(init), "Init:0/1");

        let init_failed = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "i", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        });
        assert_eq!(status(init_failed.clone()), "Init:CrashLoopBackOff");
        assert_eq!(cells("pods", init_failed)[3], "3");

        let completed = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        });
        assert_eq!(cells("pods", completed.clone())[1], "0/1");
        assert_eq!(status(completed.clone()), "Completed");
        assert_eq!(
            row_conditions("pods", &completed).unwrap()[0]["type"],
            "Completed"
        );

        let killed = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
            ]}
        });
        assert_eq!(status(killed), "Signal:9");

        let terminating = json!({
            "metadata": {"name": "p", "deletionTimestamp": ago(1)},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}}
            ]}
        });
        assert_eq!(status(terminating), "Terminating");

        let evicted = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}
        });
        assert_eq!(status(evicted), "Evicted");

        let pending = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x/gate"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "x/gate", "status": "True"}]}
        });
        let row = cells("pods", pending);
        assert_eq!(row[1], "0/1");
        assert_eq!(row[2], "Pending");
        assert_eq!(row[5], "<none>");
        assert_eq!(row[8], "1/1");
    }

    #[test]
    fn pod_sidecar_counts_towards_ready() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "a"}]
            },
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        });
        let row = cells("pods", pod);
        assert_eq!(row[1], "2/2");
        assert_eq!(row[2], "Running");
        assert_eq!(row[3], "1");
    }

    #[test]
    fn service_node_port() {
        assert_eq!(
            names("services"),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(priorities("services"), [0, 0, 0, 0, 0, 0, 1]);
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(45 * 86400)},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.12.34",
                "clusterIPs": ["10.96.12.34"],
                "selector": {"app": "web", "tier": "front"},
                "ports": [
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 443, "protocol": "TCP"}
                ]
            }
        });
        assert_eq!(
            cells("services", svc),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.12.34"),
                json!("<none>"),
                json!("80:30080/TCP,443/TCP"),
                json!("45d"),
                json!("app=web,tier=front")
            ]
        );
    }

    #[test]
    fn service_load_balancer_and_others() {
        let pending = json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "ports": [{"port": 53, "protocol": "UDP", "nodePort": 31000}]}
        });
        let row = cells("services", pending);
        assert_eq!(row[3], "<pending>");
        assert_eq!(row[4], "53:31000/UDP");
        assert_eq!(row[6], "<none>");

        let ready = json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "externalIPs": ["1.1.1.1"], "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}
        });
        assert_eq!(
            cells("services", ready)[3],
            "203.0.113.9,lb.example.com,1.1.1.1"
        );

        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        let row = cells("services", headless);
        assert_eq!(row[1], "ClusterIP");
        assert_eq!(row[2], "None");
        assert_eq!(row[4], "5432/TCP");

        let external = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        let row = cells("services", external);
        assert_eq!(row[2], "<none>");
        assert_eq!(row[3], "example.com");
        assert_eq!(row[4], "<none>");
    }

    #[test]
    fn endpoints_truncates_after_three() {
        assert_eq!(names("endpoints"), ["Name", "Endpoints", "Age"]);
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(90)},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "ports": [{"port": 80}, {"port": 443}]
            }]
        });
        assert_eq!(
            cells("endpoints", ep),
            [
                json!("web"),
                json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
                json!("90s")
            ]
        );
        let small = json!({"metadata": {"name": "a"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]});
        assert_eq!(cells("endpoints", small)[1], "[fd00::1]:8080");
        let none = json!({"metadata": {"name": "a"}});
        assert_eq!(cells("endpoints", none)[1], "<none>");
    }

    #[test]
    fn deployment_two_of_three() {
        assert_eq!(
            names("deployments"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(priorities("deployments"), [0, 0, 0, 0, 0, 1, 1, 1]);
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.27"},
                    {"name": "sidecar", "image": "busybox"}
                ]}}
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            cells("deployments", d),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
        let fresh = json!({"metadata": {"name": "x"}, "spec": {}});
        let row = cells("deployments", fresh);
        assert_eq!(row[1], "0/1");
        assert_eq!(row[4], "<unknown>");
        assert_eq!(row[7], "");
    }

    #[test]
    fn replicaset_row() {
        assert_eq!(
            names("replicasets"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let rs = json!({
            "metadata": {"name": "web-5d4f8", "creationTimestamp": ago(600)},
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "web", "pod-template-hash": "5d4f8"},
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]
                },
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            },
            "status": {"replicas": 3, "readyReplicas": 1}
        });
        assert_eq!(
            cells("replicasets", rs),
            [
                json!("web-5d4f8"),
                json!(3),
                json!(3),
                json!(1),
                json!("10m"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web,env in (dev,prod),pod-template-hash=5d4f8")
            ]
        );
    }

    #[test]
    fn daemonset_row() {
        assert_eq!(
            names("daemonsets"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let ds = json!({
            "metadata": {"name": "kube-proxy", "creationTimestamp": ago(20 * 86400)},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {"spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.32.0"}]
                }}
            },
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        assert_eq!(
            cells("daemonsets", ds),
            [
                json!("kube-proxy"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("20d"),
                json!("kube-proxy"),
                json!("registry.k8s.io/kube-proxy:v1.32.0"),
                json!("k8s-app=kube-proxy")
            ]
        );
    }

    #[test]
    fn statefulset_row() {
        assert_eq!(
            names("statefulsets"),
            ["Name", "Ready", "Age", "Containers", "Images"]
        );
        let sts = json!({
            "metadata": {"name": "db", "creationTimestamp": ago(3600)},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}},
            "status": {"replicas": 3, "readyReplicas": 3}
        });
        assert_eq!(
            cells("statefulsets", sts),
            [
                json!("db"),
                json!("3/3"),
                json!("60m"),
                json!("pg"),
                json!("postgres:16")
            ]
        );
    }

    #[test]
    fn job_rows() {
        assert_eq!(
            names("jobs"),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let done = json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(300)},
            "spec": {
                "completions": 1, "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}
            },
            "status": {
                "succeeded": 1,
                "startTime": ago(300),
                "completionTime": ago(288),
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"}
                ]
            }
        });
        assert_eq!(
            cells("jobs", done),
            [
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("12s"),
                json!("5m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=abc")
            ]
        );
        let running = json!({
            "metadata": {"name": "work"},
            "spec": {"parallelism": 3},
            "status": {"startTime": ago(30), "active": 3}
        });
        let row = cells("jobs", running);
        assert_eq!(row[1], "Running");
        assert_eq!(row[2], "0/1 of 3");
        assert_eq!(row[3], "30s");
        assert_eq!(row[7], "<none>");

        let suspended = json!({
            "metadata": {"name": "s"},
            "spec": {"completions": 5, "suspend": true},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}
        });
        let row = cells("jobs", suspended);
        assert_eq!(row[1], "Suspended");
        assert_eq!(row[2], "0/5");
        assert_eq!(row[3], "");

        let failed = json!({
            "metadata": {"name": "f"},
            "spec": {},
            "status": {"conditions": [
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True"}
            ]}
        });
        assert_eq!(cells("jobs", failed)[1], "Failed");
    }

    #[test]
    fn cronjob_row() {
        assert_eq!(
            names("cronjobs"),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let cj = json!({
            "metadata": {"name": "hello", "creationTimestamp": ago(86400)},
            "spec": {
                "schedule": "*/5 * * * *",
                "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}
            },
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(65)}
        });
        assert_eq!(
            cells("cronjobs", cj),
            [
                json!("hello"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("65s"),
                json!("24h"),
                json!("hello"),
                json!("busybox"),
                json!("<none>")
            ]
        );
        let never = json!({"metadata": {"name": "n"}, "spec": {"schedule": "@daily", "timeZone": "Etc/UTC", "suspend": true}});
        let row = cells("cronjobs", never);
        assert_eq!(row[2], "Etc/UTC");
        assert_eq!(row[3], "True");
        assert_eq!(row[4], 0);
        assert_eq!(row[5], "<none>");
    }

    #[test]
    fn namespace_row() {
        assert_eq!(names("namespaces"), ["Name", "Status", "Age"]);
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(10 * 86400)}, "status": {"phase": "Active"}});
        assert_eq!(
            cells("namespaces", ns),
            [json!("kube-system"), json!("Active"), json!("10d")]
        );
        let gone = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells("namespaces", gone)[1], "Terminating");
    }

    #[test]
    fn node_rows() {
        assert_eq!(
            names("nodes"),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(priorities("nodes"), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": ago(5 * 3600), "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "",
                "kubernetes.io/hostname": "cp-1"
            }},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}
                ],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.4",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64",
                    "containerRuntimeVersion": "containerd://1.7.13"
                }
            }
        });
        assert_eq!(
            cells("nodes", node),
            [
                json!("cp-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,etcd"),
                json!("5h"),
                json!("v1.32.4"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13")
            ]
        );
        let not_ready = json!({
            "metadata": {"name": "w", "labels": {"kubernetes.io/role": "worker"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        });
        let row = cells("nodes", not_ready);
        assert_eq!(row[1], "NotReady");
        assert_eq!(row[2], "worker");
        assert_eq!(row[7], "<unknown>");
        let bare = json!({"metadata": {"name": "b"}});
        let row = cells("nodes", bare);
        assert_eq!(row[1], "Unknown");
        assert_eq!(row[2], "<none>");
    }

    #[test]
    fn configmap_secret_serviceaccount_rows() {
        assert_eq!(names("configmaps"), ["Name", "Data", "Age"]);
        let cm = json!({
            "metadata": {"name": "cfg", "creationTimestamp": ago(7)},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"c": "AA=="}
        });
        assert_eq!(
            cells("configmaps", cm),
            [json!("cfg"), json!(3), json!("7s")]
        );

        assert_eq!(names("secrets"), ["Name", "Type", "Data", "Age"]);
        let secret = json!({
            "metadata": {"name": "tls", "creationTimestamp": ago(7)},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""}
        });
        assert_eq!(
            cells("secrets", secret),
            [
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("7s")
            ]
        );
        let opaque = json!({"metadata": {"name": "o"}, "data": {"a": ""}, "stringData": {"a": "x", "b": "y"}});
        let row = cells("secrets", opaque);
        assert_eq!(row[1], "Opaque");
        assert_eq!(row[2], 2);

        assert_eq!(names("serviceaccounts"), ["Name", "Secrets", "Age"]);
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(7)}});
        assert_eq!(
            cells("serviceaccounts", sa),
            [json!("default"), json!(0), json!("7s")]
        );
    }

    #[test]
    fn event_row() {
        assert_eq!(
            names("events"),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(priorities("events"), [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        assert_eq!(column_definitions("events")[9]["format"], "name");
        let ev = json!({
            "metadata": {"name": "web-1.17a", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "type": "Warning",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": ago(600),
            "lastTimestamp": ago(30),
            "count": 7
        });
        assert_eq!(
            cells("events", ev),
            [
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container"),
                json!("10m"),
                json!(7),
                json!("web-1.17a")
            ]
        );
        let new_api = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "eventTime": "2025-01-10T11:59:00.123456Z",
            "reportingComponent": "scheduler",
            "type": "Normal"
        });
        let row = cells("events", new_api);
        assert_eq!(row[0], "59s");
        assert_eq!(row[3], "node");
        assert_eq!(row[5], "scheduler");
        assert_eq!(row[7], "59s");
        assert_eq!(row[8], 1);

        let events_api = json!({
            "metadata": {"name": "e2"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "note": "Scaled up replica set web-5d4f8 to 3",
            "reason": "ScalingReplicaSet",
            "type": "Normal",
            "eventTime": null,
            "deprecatedSource": {"component": "deployment-controller"},
            "deprecatedFirstTimestamp": ago(120),
            "deprecatedLastTimestamp": ago(120),
            "deprecatedCount": 1
        });
        assert_eq!(
            cells("events", events_api)[..8],
            [
                json!("2m"),
                json!("Normal"),
                json!("ScalingReplicaSet"),
                json!("deployment/web"),
                json!(""),
                json!("deployment-controller"),
                json!("Scaled up replica set web-5d4f8 to 3"),
                json!("2m")
            ]
        );
    }

    #[test]
    fn ingress_rows() {
        assert_eq!(
            names("ingresses"),
            ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
        );
        let ing = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3600)},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                "tls": [{"hosts": ["a.example.com"]}]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.49.2"}]}}
        });
        assert_eq!(
            cells("ingresses", ing),
            [
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com"),
                json!("192.168.49.2"),
                json!("80, 443"),
                json!("60m")
            ]
        );
        let bare = json!({"metadata": {"name": "x"}, "spec": {"defaultBackend": {}, "rules": [{"http": {}}]}});
        assert_eq!(
            cells("ingresses", bare)[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
        let many = json!({"metadata": {"name": "m"}, "spec": {"rules": [
            {"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}
        ]}});
        assert_eq!(cells("ingresses", many)[2], "a,b,c + 2 more...");
    }

    #[test]
    fn ingress_class_row() {
        assert_eq!(
            names("ingressclasses"),
            ["Name", "Controller", "Parameters", "Age"]
        );
        let ic = json!({
            "metadata": {"name": "nginx", "creationTimestamp": ago(60)},
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}
        });
        assert_eq!(
            cells("ingressclasses", ic),
            [
                json!("nginx"),
                json!("k8s.io/ingress-nginx"),
                json!("IngressParameters.k8s.example.com/external-lb"),
                json!("60s")
            ]
        );
        let plain = json!({"metadata": {"name": "p"}, "spec": {"controller": "c"}});
        assert_eq!(cells("ingressclasses", plain)[2], "<none>");
    }

    #[test]
    fn endpoint_slice_row() {
        assert_eq!(
            names("endpointslices"),
            ["Name", "AddressType", "Ports", "Endpoints", "Age"]
        );
        let slice = json!({
            "metadata": {"name": "web-abc12", "creationTimestamp": ago(60)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}],
            "endpoints": [
                {"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]},
                {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}
            ]
        });
        assert_eq!(
            cells("endpointslices", slice),
            [
                json!("web-abc12"),
                json!("IPv4"),
                json!("80,metrics"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
                json!("60s")
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(
            cells("endpointslices", empty)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }

    #[test]
    fn lease_row() {
        assert_eq!(names("leases"), ["Name", "Holder", "Age"]);
        let lease = json!({
            "metadata": {"name": "kube-scheduler", "creationTimestamp": ago(3 * 86400)},
            "spec": {"holderIdentity": "cp-1_0f3c"}
        });
        assert_eq!(
            cells("leases", lease),
            [json!("kube-scheduler"), json!("cp-1_0f3c"), json!("3d")]
        );
    }

    #[test]
    fn other_builtins() {
        let rb = json!({
            "metadata": {"name": "admins", "creationTimestamp": ago(60)},
            "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "ops"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                {"kind": "User", "name": "bob"}
            ]
        });
        assert_eq!(
            cells("rolebindings", rb),
            [
                json!("admins"),
                json!("ClusterRole/admin"),
                json!("60s"),
                json!("alice, bob"),
                json!("ops"),
                json!("tools/ci")
            ]
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("poddisruptionbudgets", pdb)[1..4],
            [json!("50%"), json!("N/A"), json!(1)]
        );
        let sc = json!({
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer"
        });
        assert_eq!(
            cells("storageclasses", sc)[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
        let role =
            json!({"metadata": {"name": "admin", "creationTimestamp": "2025-01-01T08:30:00Z"}});
        assert_eq!(names("clusterroles"), ["Name", "Created At"]);
        assert_eq!(
            cells("clusterroles", role),
            [json!("admin"), json!("2025-01-01T08:30:00Z")]
        );
    }

    #[test]
    fn fallback_prints_name_and_age() {
        assert_eq!(names("widgets"), ["Name", "Age"]);
        let w = json!({"metadata": {"name": "w1", "creationTimestamp": ago(42)}});
        assert_eq!(cells("widgets", w), [json!("w1"), json!("42s")]);
    }

    #[test]
    fn table_shape() {
        let pods = [json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "a"}, "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded"}
        })];
        let t = table(
            Printer::Builtin("pods"),
            &pods,
            "42",
            Some("tok"),
            "Metadata",
            true,
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        let row = &t["rows"][0];
        assert_eq!(row["cells"][0], "a");
        assert_eq!(row["cells"][4], "5s");
        assert_eq!(row["conditions"][0]["reason"], "Succeeded");
        assert_eq!(
            row["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": pods[0]["metadata"]
            })
        );

        let t = table(
            Printer::Builtin("pods"),
            &pods,
            "",
            None,
            "Object",
            false,
            now(),
        );
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["columnDefinitions"], Value::Null);
        assert_eq!(t["rows"][0]["object"], pods[0]);

        let t = table(
            Printer::Builtin("configmaps"),
            &[],
            "7",
            None,
            "None",
            true,
            now(),
        );
        assert_eq!(t["rows"], json!([]));
        let t = table(
            Printer::Builtin("configmaps"),
            &pods,
            "7",
            None,
            "None",
            true,
            now(),
        );
        assert_eq!(t["rows"][0]["object"], Value::Null);
        assert!(t["rows"][0].get("conditions").is_none());
    }

    #[test]
    fn column_definition_shape() {
        for resource in [
            "pods",
            "services",
            "endpoints",
            "deployments",
            "replicasets",
            "daemonsets",
            "statefulsets",
            "jobs",
            "cronjobs",
            "namespaces",
            "nodes",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "events",
            "ingresses",
            "ingressclasses",
            "endpointslices",
            "leases",
            "rolebindings",
            "clusterrolebindings",
            "poddisruptionbudgets",
            "storageclasses",
            "priorityclasses",
            "networkpolicies",
            "replicationcontrollers",
            "roles",
            "widgets",
        ] {
            let defs = column_definitions(resource);
            for def in &defs {
                let keys: Vec<&str> = def
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(keys.len(), 5, "{resource}: {def}");
                assert!(!def["description"].as_str().unwrap().is_empty());
            }
            // Every printer emits exactly one cell per column.
            let obj = json!({"metadata": {"name": "x"}});
            assert_eq!(
                row_cells(resource, &obj, now()).len(),
                defs.len(),
                "{resource}"
            );
        }
    }
}
