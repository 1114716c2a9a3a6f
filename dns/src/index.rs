//! The in-memory index the server answers from: names to records, rebuilt
//! per Service as Service and EndpointSlice events arrive.
//!
//! One writer (the watch loop, or a test) keeps the source objects and
//! computes a Service's records outside the zone lock; readers take the
//! zone's read lock only for one hash lookup and a few record clones.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_server::proto::rr::{LowerName, Name, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::{Mutex, RwLock};

use crate::records;

/// The longest CNAME chain followed inside the cluster domain.
const MAX_CNAME_CHAIN: usize = 8;

/// `namespace/name` of a Service; owner of the records computed from it.
type Key = Arc<str>;

/// Owner of the records that exist for the zone itself.
const ZONE_OWNER: &str = "";

/// What the cluster domain says about one name and type.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Records of the type (or a CNAME chain towards them).
    Answer {
        /// The answer section.
        records: Vec<Record>,
        /// A CNAME target outside the cluster domain, to be resolved
        /// upstream and appended (ExternalName Services).
        external_target: Option<Name>,
    },
    /// The name exists, with no records of the type.
    NoData,
    /// No such name in the cluster domain.
    NxDomain,
    /// Not a name this index answers for: forward it.
    Outside,
}

/// The records of the cluster domain, fed by Service and EndpointSlice
/// events.
pub struct ClusterIndex {
    domain: LowerName,
    domain_name: Name,
    ttl: u32,
    soa: Record,
    zone: RwLock<Zone>,
    /// Bumped after every change to the zone, so that answers encoded
    /// from it earlier are known to be stale.
    generation: AtomicU64,
    sources: Mutex<Sources>,
}

/// What readers see.
#[derive(Default)]
struct Zone {
    nodes: HashMap<LowerName, Node>,
    /// Names with no records of their own but names below them
    /// (`<ns>.svc.<domain>`, `_tcp.<svc>...`), with how many owned names
    /// keep each alive: they answer NODATA, not NXDOMAIN.
    interior: HashMap<LowerName, u32>,
}

#[derive(Default)]
struct Node {
    /// Records by owner: several headless Services may publish a PTR for
    /// the same endpoint address.
    owners: Vec<(Key, Vec<Record>)>,
}

/// What the writer keeps to recompute one Service's records.
#[derive(Default)]
struct Sources {
    services: HashMap<Key, Service>,
    /// EndpointSlices by owning Service, then by slice name.
    slices: HashMap<Key, BTreeMap<String, EndpointSlice>>,
    /// The slice name -> owning Service, to find a slice's Service on
    /// delete even when its labels changed.
    slice_owner: HashMap<(String, String), Key>,
    /// The names each Service owns in the zone now.
    owned: HashMap<Key, Vec<LowerName>>,
}

// === impl ClusterIndex ===

impl ClusterIndex {
    /// An empty index for a cluster domain (`cluster.local`), its records
    /// answered with `ttl` seconds.
    pub fn new(cluster_domain: &str, ttl: u32) -> Result<Self, crate::Error> {
        let mut domain_name = Name::from_ascii(cluster_domain.trim_end_matches('.'))
            .map_err(|source| crate::Error::ClusterDomain {
                domain: cluster_domain.to_string(),
                source,
            })?
            .to_lowercase();
        domain_name.set_fqdn(true);
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let soa = records::soa_record(&domain_name, ttl, serial);
        let index = Self {
            domain: LowerName::new(&domain_name),
            ttl,
            soa: soa.clone(),
            zone: RwLock::new(Zone::default()),
            generation: AtomicU64::new(0),
            sources: Mutex::new(Sources::default()),
            domain_name,
        };
        let mut zone_records = vec![soa];
        zone_records.extend(records::dns_version_record(&index.domain_name, ttl));
        index.publish(
            &mut index.sources.lock(),
            Arc::from(ZONE_OWNER),
            zone_records,
            None,
        );
        // `svc.<domain>` and `pod.<domain>` exist even with no Service.
        let mut zone = index.zone.write();
        for label in ["svc", "pod"] {
            if let Ok(name) =
                Name::from_labels([label]).and_then(|n| n.append_domain(&index.domain_name))
            {
                *zone.interior.entry(LowerName::new(&name)).or_default() += 1;
            }
        }
        drop(zone);
        Ok(index)
    }

    /// The cluster domain, fully qualified and lower case.
    pub fn domain(&self) -> &Name {
        &self.domain_name
    }

    /// The TTL of cluster records.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The zone's SOA record.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// How many times the zone changed. Read it before a lookup: an answer
    /// derived from that lookup is current while this stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a name is inside the cluster domain.
    pub fn in_zone(&self, name: &LowerName) -> bool {
        self.domain.zone_of(name)
    }

    /// A Service was added or changed.
    pub fn apply_service(&self, service: &Service) {
        let Some(key) = service_key(service) else {
            return;
        };
        let mut sources = self.sources.lock();
        sources.services.insert(key.clone(), service.clone());
        self.refresh(&mut sources, key);
    }

    /// A Service was deleted.
    pub fn delete_service(&self, service: &Service) {
        let Some(key) = service_key(service) else {
            return;
        };
        let mut sources = self.sources.lock();
        sources.services.remove(&key);
        self.refresh(&mut sources, key);
    }

    /// An EndpointSlice was added or changed.
    pub fn apply_endpoint_slice(&self, slice: &EndpointSlice) {
        let mut sources = self.sources.lock();
        let touched = insert_slice(&mut sources, slice);
        for key in touched {
            self.refresh(&mut sources, key);
        }
    }

    /// An EndpointSlice was deleted.
    pub fn delete_endpoint_slice(&self, slice: &EndpointSlice) {
        let mut sources = self.sources.lock();
        if let Some(key) = remove_slice(&mut sources, slice) {
            self.refresh(&mut sources, key);
        }
    }

    /// Replace every Service (after a relist), dropping those not listed.
    pub fn replace_services(&self, services: &[Service]) {
        let mut sources = self.sources.lock();
        let listed: HashMap<Key, &Service> = services
            .iter()
            .filter_map(|s| Some((service_key(s)?, s)))
            .collect();
        let gone: Vec<Key> = sources
            .services
            .keys()
            .filter(|k| !listed.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            sources.services.remove(&key);
            self.refresh(&mut sources, key);
        }
        for (key, service) in listed {
            if sources.services.get(&key) == Some(service) {
                continue;
            }
            sources.services.insert(key.clone(), service.clone());
            self.refresh(&mut sources, key);
        }
    }

    /// Replace every EndpointSlice (after a relist), dropping those not
    /// listed.
    pub fn replace_endpoint_slices(&self, slices: &[EndpointSlice]) {
        let mut sources = self.sources.lock();
        let listed: std::collections::HashSet<(String, String)> =
            slices.iter().filter_map(slice_key).collect();
        let gone: Vec<(String, String)> = sources
            .slice_owner
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        let mut touched = std::collections::HashSet::new();
        for (namespace, name) in gone {
            if let Some(owner) = sources.slice_owner.remove(&(namespace, name.clone())) {
                if let Some(by_name) = sources.slices.get_mut(&owner) {
                    by_name.remove(&name);
                }
                touched.insert(owner);
            }
        }
        for slice in slices {
            touched.extend(insert_slice(&mut sources, slice));
        }
        for key in touched {
            self.refresh(&mut sources, key);
        }
    }

    /// What the cluster domain answers for a name and type.
    pub fn lookup(&self, name: &LowerName, rtype: RecordType) -> Lookup {
        let zone = self.zone.read();
        if !self.domain.zone_of(name) {
            // Reverse names of cluster addresses are ours; any other
            // reverse name goes upstream (CoreDNS's fallthrough).
            return match zone.nodes.get(name) {
                Some(node) => match node.matching(rtype) {
                    records if !records.is_empty() => Lookup::Answer {
                        records,
                        external_target: None,
                    },
                    _ => Lookup::Outside,
                },
                None => Lookup::Outside,
            };
        }
        let mut records = Vec::new();
        let mut current = name.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(node) = zone.nodes.get(&current) else {
                if !records.is_empty() {
                    // A CNAME into a missing cluster name: the chain so far.
                    break;
                }
                return self.lookup_missing(&zone, &current, rtype);
            };
            let matching = node.matching(rtype);
            if !matching.is_empty() {
                records.extend(matching);
                break;
            }
            let Some(cname) = node.cname() else {
                if records.is_empty() {
                    return Lookup::NoData;
                }
                break;
            };
            let target = cname_target(&cname);
            records.push(cname);
            let Some(target) = target else { break };
            let lower = LowerName::new(&target);
            if !self.domain.zone_of(&lower) {
                return Lookup::Answer {
                    records,
                    external_target: Some(target),
                };
            }
            current = lower;
        }
        Lookup::Answer {
            records,
            external_target: None,
        }
    }

    /// A name with no node: an interior name, a pod name, or nothing.
    fn lookup_missing(&self, zone: &Zone, name: &LowerName, rtype: RecordType) -> Lookup {
        if zone.interior.contains_key(name) {
            return Lookup::NoData;
        }
        let depth = name.num_labels().saturating_sub(self.domain.num_labels());
        let labels: Vec<&[u8]> = name.iter().take(depth as usize).collect();
        match labels.as_slice() {
            // `<namespace>.pod.<domain>`: any namespace may hold pods.
            [_, pod] if pod.eq_ignore_ascii_case(b"pod") => Lookup::NoData,
            [ip, _, pod] if pod.eq_ignore_ascii_case(b"pod") => match records::pod_address(ip) {
                Some(address) => {
                    let record = records::address_record(Name::from(name), self.ttl, address);
                    if record.record_type() == rtype || rtype == RecordType::ANY {
                        Lookup::Answer {
                            records: vec![record],
                            external_target: None,
                        }
                    } else {
                        Lookup::NoData
                    }
                }
                None => Lookup::NxDomain,
            },
            _ => Lookup::NxDomain,
        }
    }

    /// The A/AAAA records of a cluster name, for the additional section of
    /// SRV answers.
    pub fn addresses(&self, name: &LowerName) -> Vec<Record> {
        let zone = self.zone.read();
        zone.nodes.get(name).map_or_else(Vec::new, |node| {
            node.records()
                .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                .cloned()
                .collect()
        })
    }

    /// Recompute the records of one Service and swap them into the zone.
    fn refresh(&self, sources: &mut Sources, key: Key) {
        let mut exists = None;
        let records = match sources.services.get(&key) {
            Some(service) => {
                let slices: Vec<&EndpointSlice> = sources
                    .slices
                    .get(&key)
                    .map(|by_name| by_name.values().collect())
                    .unwrap_or_default();
                let records =
                    records::service_records(&self.domain_name, self.ttl, service, &slices);
                let names = service
                    .metadata
                    .namespace
                    .as_deref()
                    .zip(service.metadata.name.as_deref());
                exists = if records.is_empty() && records::is_headless(service) {
                    // A headless Service with no ready endpoint has no name
                    // (NXDOMAIN, DNS specification 2.4.1, as CoreDNS
                    // answers); its namespace still exists (NODATA).
                    names.and_then(|(ns, _)| records::namespace_name(&self.domain_name, ns))
                } else {
                    // A Service waiting for its ClusterIP: NODATA.
                    names.and_then(|(ns, name)| records::service_name(&self.domain_name, ns, name))
                };
                records
            }
            None => Vec::new(),
        };
        self.publish(sources, key, records, exists);
    }

    /// Swap the records one owner holds in the zone for new ones; `exists`
    /// is a name it holds even when it has no records.
    fn publish(&self, sources: &mut Sources, key: Key, records: Vec<Record>, exists: Option<Name>) {
        // Group outside the lock.
        let mut by_name: HashMap<LowerName, Vec<Record>> = HashMap::new();
        if let Some(name) = exists {
            by_name.insert(LowerName::new(&name), Vec::new());
        }
        for record in records {
            by_name
                .entry(LowerName::new(&record.name))
                .or_default()
                .push(record);
        }
        let new_names: Vec<LowerName> = by_name.keys().cloned().collect();
        let old_names = sources.owned.remove(&key).unwrap_or_default();

        let mut zone = self.zone.write();
        for name in &old_names {
            if let Some(node) = zone.nodes.get_mut(name) {
                node.owners.retain(|(owner, _)| *owner != key);
                if node.owners.is_empty() {
                    zone.nodes.remove(name);
                }
            }
            for parent in self.interior_names(name) {
                if let Some(count) = zone.interior.get_mut(&parent) {
                    *count -= 1;
                    if *count == 0 {
                        zone.interior.remove(&parent);
                    }
                }
            }
        }
        for (name, records) in by_name {
            for parent in self.interior_names(&name) {
                *zone.interior.entry(parent).or_default() += 1;
            }
            zone.nodes
                .entry(name)
                .or_default()
                .owners
                .push((key.clone(), records));
        }
        drop(zone);
        self.generation.fetch_add(1, Ordering::Release);
        if !new_names.is_empty() {
            sources.owned.insert(key, new_names);
        }
    }

    /// The names between a cluster name and the domain apex (inclusive of
    /// the apex, exclusive of the name); none for names outside the domain.
    fn interior_names(&self, name: &LowerName) -> Vec<LowerName> {
        let mut out = Vec::new();
        if !self.domain.zone_of(name) {
            return out;
        }
        let mut current = name.base_name();
        while current.num_labels() >= self.domain.num_labels() {
            out.push(current.clone());
            if current.num_labels() == self.domain.num_labels() {
                break;
            }
            current = current.base_name();
        }
        out
    }
}

// === impl Node ===

impl Node {
    fn records(&self) -> impl Iterator<Item = &Record> {
        self.owners.iter().flat_map(|(_, records)| records.iter())
    }

    fn matching(&self, rtype: RecordType) -> Vec<Record> {
        self.records()
            .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
            .cloned()
            .collect()
    }

    fn cname(&self) -> Option<Record> {
        self.records()
            .find(|r| r.record_type() == RecordType::CNAME)
            .cloned()
    }
}

fn cname_target(record: &Record) -> Option<Name> {
    match &record.data {
        hickory_server::proto::rr::RData::CNAME(cname) => Some(cname.0.clone()),
        _ => None,
    }
}

fn service_key(service: &Service) -> Option<Key> {
    Some(Arc::from(format!(
        "{}/{}",
        service.metadata.namespace.as_deref()?,
        service.metadata.name.as_deref()?
    )))
}

fn slice_key(slice: &EndpointSlice) -> Option<(String, String)> {
    Some((
        slice.metadata.namespace.clone()?,
        slice.metadata.name.clone()?,
    ))
}

/// File a slice under its Service; the Services whose records it touches
/// (two when its service-name label moved).
fn insert_slice(sources: &mut Sources, slice: &EndpointSlice) -> Vec<Key> {
    let mut touched = Vec::new();
    let Some(id) = slice_key(slice) else {
        return touched;
    };
    let owner = records::slice_service(slice).map(|(ns, svc)| Key::from(format!("{ns}/{svc}")));
    if let Some(previous) = sources.slice_owner.get(&id).cloned() {
        if Some(&previous) != owner.as_ref() {
            if let Some(by_name) = sources.slices.get_mut(&previous) {
                by_name.remove(&id.1);
            }
            sources.slice_owner.remove(&id);
            touched.push(previous);
        }
    }
    if let Some(owner) = owner {
        let by_name = sources.slices.entry(owner.clone()).or_default();
        if by_name.get(&id.1) == Some(slice) {
            return touched;
        }
        by_name.insert(id.1.clone(), slice.clone());
        sources.slice_owner.insert(id, owner.clone());
        touched.push(owner);
    }
    touched
}

fn remove_slice(sources: &mut Sources, slice: &EndpointSlice) -> Option<Key> {
    let id = slice_key(slice)?;
    let owner = sources.slice_owner.remove(&id)?;
    if let Some(by_name) = sources.slices.get_mut(&owner) {
        by_name.remove(&id.1);
        if by_name.is_empty() {
            sources.slices.remove(&owner);
        }
    }
    Some(owner)
}

#[cfg(test)]
mod tests;
