//! The pool of node pod CIDRs: the cluster CIDR cut into subnets of one
//! size, handed out round-robin (as Kubernetes' `cidrset`: after the last
//! one given, so a subnet a deleted node held is not given again at once
//! while other machines may still route it).

use std::net::Ipv4Addr;

/// An IPv4 subnet: its network address and prefix length.
pub type Cidr = (Ipv4Addr, u8);

/// Kubernetes' limit: at most 2^16 node subnets in one cluster CIDR.
const MAX_SUBNET_BITS: u8 = 16;

/// The subnets of a cluster CIDR and which are taken.
#[derive(Debug, Clone)]
pub struct CidrSet {
    base: u32,
    cluster_prefix: u8,
    node_prefix: u8,
    used: Vec<bool>,
    /// Where the next search starts.
    next: usize,
}

impl CidrSet {
    /// The `/node_prefix` subnets of `cluster`.
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<Self, String> {
        let (net, cluster_prefix) = cluster;
        if node_prefix < cluster_prefix || node_prefix > 32 {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix} must be between the cluster CIDR's prefix {cluster_prefix} and 32"
            ));
        }
        if node_prefix - cluster_prefix > MAX_SUBNET_BITS {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix} cuts {net}/{cluster_prefix} into more than 2^{MAX_SUBNET_BITS} node subnets"
            ));
        }
        Ok(Self {
            base: u32::from(net) & mask(cluster_prefix),
            cluster_prefix,
            node_prefix,
            used: vec![false; 1 << (node_prefix - cluster_prefix)],
            next: 0,
        })
    }

    fn subnet(&self, index: usize) -> Cidr {
        let step = 1u64 << (32 - self.node_prefix);
        let addr = u64::from(self.base) + index as u64 * step;
        (Ipv4Addr::from(addr as u32), self.node_prefix)
    }

    /// The indexes of the subnets that `cidr` covers or lies in; empty when
    /// it is outside the cluster CIDR.
    fn indexes(&self, (net, prefix): Cidr) -> std::ops::Range<usize> {
        let addr = u32::from(net);
        if prefix < self.cluster_prefix {
            // Larger than the whole pool: it covers all of it if it
            // contains it.
            return if addr & mask(prefix) == self.base & mask(prefix) {
                0..self.used.len()
            } else {
                0..0
            };
        }
        if addr & mask(self.cluster_prefix) != self.base {
            return 0..0;
        }
        let shift = 32 - u32::from(self.node_prefix);
        let first = ((addr - self.base) >> shift) as usize;
        let count = if prefix >= self.node_prefix {
            1
        } else {
            1usize << (self.node_prefix - prefix)
        };
        first..(first + count).min(self.used.len())
    }

    /// The next free subnet, now taken; `None` when every one is taken.
    pub fn allocate(&mut self) -> Option<Cidr> {
        let n = self.used.len();
        let index = (0..n)
            .map(|i| (self.next + i) % n)
            .find(|i| !self.used[*i])?;
        self.used[index] = true;
        self.next = (index + 1) % n;
        Some(self.subnet(index))
    }

    /// Mark `cidr` (and every subnet it covers) taken; false when it is
    /// outside the cluster CIDR.
    pub fn occupy(&mut self, cidr: Cidr) -> bool {
        let range = self.indexes(cidr);
        if range.is_empty() {
            return false;
        }
        for i in range {
            self.used[i] = true;
        }
        true
    }

    /// Give `cidr` back.
    pub fn release(&mut self, cidr: Cidr) {
        for i in self.indexes(cidr) {
            self.used[i] = false;
        }
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// `a.b.c.d/n`.
pub fn format(cidr: Cidr) -> String {
    format!("{}/{}", cidr.0, cidr.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> CidrSet {
        CidrSet::new((Ipv4Addr::new(10, 244, 0, 0), 16), 24).unwrap()
    }

    #[test]
    fn hands_out_subnets_in_order_and_round_robin() {
        let mut s = set();
        assert_eq!(format(s.allocate().unwrap()), "10.244.0.0/24");
        assert_eq!(format(s.allocate().unwrap()), "10.244.1.0/24");
        s.release((Ipv4Addr::new(10, 244, 0, 0), 24));
        // Not the one just released: the search goes on from the last.
        assert_eq!(format(s.allocate().unwrap()), "10.244.2.0/24");
    }

    #[test]
    fn occupied_subnets_are_skipped_and_outside_ones_refused() {
        let mut s = set();
        assert!(s.occupy((Ipv4Addr::new(10, 244, 0, 0), 24)));
        assert!(s.occupy((Ipv4Addr::new(10, 244, 2, 0), 23)));
        assert!(!s.occupy((Ipv4Addr::new(10, 201, 3, 0), 24)));
        let got: Vec<String> = (0..2).map(|_| format(s.allocate().unwrap())).collect();
        assert_eq!(got, ["10.244.1.0/24", "10.244.4.0/24"]);
    }

    #[test]
    fn an_exhausted_pool_says_so() {
        let mut s = CidrSet::new((Ipv4Addr::new(10, 0, 0, 0), 30), 31).unwrap();
        assert_eq!(format(s.allocate().unwrap()), "10.0.0.0/31");
        assert_eq!(format(s.allocate().unwrap()), "10.0.0.2/31");
        assert_eq!(s.allocate(), None);
        s.release((Ipv4Addr::new(10, 0, 0, 2), 31));
        assert_eq!(format(s.allocate().unwrap()), "10.0.0.2/31");
    }

    #[test]
    fn sizes_are_checked() {
        assert!(CidrSet::new((Ipv4Addr::new(10, 244, 0, 0), 16), 8).is_err());
        assert!(CidrSet::new((Ipv4Addr::new(10, 0, 0, 0), 8), 25).is_err());
        assert!(CidrSet::new((Ipv4Addr::new(10, 0, 0, 0), 8), 24).is_ok());
    }
}
