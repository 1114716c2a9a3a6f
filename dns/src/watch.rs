//! Feeds the index from the API: watchers on Services and EndpointSlices
//! in every namespace, applied as events arrive.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use crate::index::ClusterIndex;

/// Keep the index in step with the cluster's Services and EndpointSlices;
/// runs until dropped. Watch errors are logged and retried with backoff.
pub async fn watch(client: Client, index: Arc<ClusterIndex>) {
    tokio::join!(
        watch_services(Api::all(client.clone()), index.clone()),
        watch_endpoint_slices(Api::all(client), index),
    );
}

async fn watch_services(api: Api<Service>, index: Arc<ClusterIndex>) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // A relist is buffered and swapped in whole at InitDone, so Services
    // deleted while disconnected disappear.
    let mut relist = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(service)) => index.apply_service(&service),
            Ok(Event::Delete(service)) => index.delete_service(&service),
            Ok(Event::Init) => relist.clear(),
            Ok(Event::InitApply(service)) => relist.push(service),
            Ok(Event::InitDone) => index.replace_services(&std::mem::take(&mut relist)),
            Err(error) => tracing::warn!(%error, "Service watch failed; retrying"),
        }
    }
}

async fn watch_endpoint_slices(api: Api<EndpointSlice>, index: Arc<ClusterIndex>) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(slice)) => index.apply_endpoint_slice(&slice),
            Ok(Event::Delete(slice)) => index.delete_endpoint_slice(&slice),
            Ok(Event::Init) => relist.clear(),
            Ok(Event::InitApply(slice)) => relist.push(slice),
            Ok(Event::InitDone) => index.replace_endpoint_slices(&std::mem::take(&mut relist)),
            Err(error) => tracing::warn!(%error, "EndpointSlice watch failed; retrying"),
        }
    }
}
