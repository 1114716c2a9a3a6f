//! An object's status as the API server sends it, before typed decoding:
//! whether a counter is absent or 0 is exactly what a client such as
//! `kubectl get -o jsonpath='{.status.readyReplicas}'` sees.

#![allow(dead_code)]

use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, Resource};
use serde_json::Value;

/// The `status` of the named object in `default`, as raw JSON.
pub async fn raw_status<K: Resource<DynamicType = ()>>(client: &Client, name: &str) -> Value {
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    api.get(name).await.unwrap().data["status"].clone()
}

/// Which of `fields` the status carries.
pub fn present<'a>(status: &Value, fields: &[&'a str]) -> Vec<&'a str> {
    fields
        .iter()
        .copied()
        .filter(|f| status.get(f).is_some())
        .collect()
}
