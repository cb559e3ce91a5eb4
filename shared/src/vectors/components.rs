//! Clustering joins every pair of objects whose similarity reaches the threshold; the
//! clusters are the connected components of that graph. Edges arrive tile by tile and
//! never need to be kept: a union-find absorbs each one in near-constant time, with one
//! u32 parent and one u32 size per object, and the components are read off at the end.

/// Union-find over n objects (path halving/compression, union by size).
#[derive(Debug, Clone)]
pub struct DisjointSets {
    parent: Vec<u32>,
    /// Members of the set an index is the root of; stale for non-roots.
    size: Vec<u32>,
}

impl DisjointSets {
    /// `n` singleton sets. Panics past u32::MAX objects, the index width edges use.
    pub fn new(n: usize) -> Self {
        let n32 = u32::try_from(n).expect("DisjointSets holds at most u32::MAX objects");
        DisjointSets {
            parent: (0..n32).collect(),
            size: vec![1; n],
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Joins the sets of `a` and `b`; true when they were apart.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        // The smaller tree goes under the larger, so no path grows past log2(n).
        if self.size[ra] < self.size[rb] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb] = ra as u32;
        self.size[ra] += self.size[rb];
        true
    }

    /// The representative of `a`'s set, halving the path on the way up.
    pub fn find(&mut self, a: usize) -> usize {
        let mut x = a;
        loop {
            let p = self.parent[x] as usize;
            if p == x {
                return x;
            }
            let grand = self.parent[p];
            self.parent[x] = grand;
            x = grand as usize;
        }
    }
}

/// Connected components as lists of member indices: each list ascending, lists ordered
/// largest first, equal sizes by smallest member. Singletons are components too, so every
/// index appears exactly once.
pub fn components(sets: &mut DisjointSets) -> Vec<Vec<u32>> {
    let n = sets.len();
    // Number the components by first appearance while walking indices upwards: each list
    // then fills in ascending order and its first member is its smallest.
    let mut slot_of_root = vec![u32::MAX; n];
    let mut lists: Vec<Vec<u32>> = Vec::new();
    for i in 0..n {
        let root = sets.find(i);
        if slot_of_root[root] == u32::MAX {
            slot_of_root[root] = lists.len() as u32;
            lists.push(Vec::with_capacity(sets.size[root] as usize));
        }
        lists[slot_of_root[root] as usize].push(i as u32);
    }
    // Stable sort: equal sizes keep first-appearance order, which is smallest member.
    lists.sort_by_key(|list| std::cmp::Reverse(list.len()));
    lists
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// Components by breadth-first search over an adjacency list, ordered as
    /// `components` promises.
    fn bfs_components(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<u32>> {
        let mut adjacent = vec![Vec::new(); n];
        for &(a, b) in edges {
            adjacent[a].push(b);
            adjacent[b].push(a);
        }
        let mut seen = vec![false; n];
        let mut out = Vec::new();
        for start in 0..n {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut members = vec![start as u32];
            let mut queue = VecDeque::from([start]);
            while let Some(x) = queue.pop_front() {
                for &y in &adjacent[x] {
                    if !seen[y] {
                        seen[y] = true;
                        members.push(y as u32);
                        queue.push_back(y);
                    }
                }
            }
            members.sort_unstable();
            out.push(members);
        }
        out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        out
    }

    proptest! {
        #[test]
        fn components_equal_breadth_first_search(
            (n, edges) in (0usize..60).prop_flat_map(|n| {
                let edge = (0..n.max(1), 0..n.max(1));
                (Just(n), prop::collection::vec(edge, if n == 0 { 0..1 } else { 0..90 }))
            })
        ) {
            let mut sets = DisjointSets::new(n);
            let mut merged = 0;
            for &(a, b) in &edges {
                if sets.union(a, b) {
                    merged += 1;
                }
            }
            let want = bfs_components(n, &edges);
            // Every successful union removes exactly one component.
            prop_assert_eq!(n - merged, want.len());
            for list in &want {
                let root = sets.find(list[0] as usize);
                prop_assert!(list.iter().all(|&m| sets.find(m as usize) == root));
            }
            prop_assert_eq!(components(&mut sets), want);
        }
    }

    #[test]
    fn union_reports_whether_it_joined() {
        let mut sets = DisjointSets::new(4);
        assert!(sets.union(0, 1));
        assert!(sets.union(2, 3));
        assert!(!sets.union(1, 0));
        assert!(sets.union(3, 1));
        assert!(!sets.union(0, 2));
        assert_eq!(components(&mut sets), vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn long_chains_stay_shallow() {
        // A path built in the worst order for naive linking still finds quickly.
        let n = 100_000;
        let mut sets = DisjointSets::new(n);
        for i in 1..n {
            sets.union(i, i - 1);
        }
        let lists = components(&mut sets);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].len(), n);
    }
}
