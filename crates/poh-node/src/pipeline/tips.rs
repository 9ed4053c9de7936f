//! The DAG's tips as the committer tracks them: which transactions a parentless one links to
//! (SPEC §2), and what changed since the last commit so the store's copy follows.
//!
//! A tip is a stored transaction that no stored transaction names as a parent. A parent may
//! arrive after a child that names it: it is then no tip, and when it names no parents itself
//! it must not be linked to its own children (a cycle). Who waits for an id is in the store
//! once written ([`poh_store::Store::waiting_children`]) and in [`Unstored`] until then.

use std::{
    collections::{BTreeMap, VecDeque},
    mem,
};

use super::{IdMap, IdSet};

/// Most DAG tips a parentless transaction is linked to (SPEC §2).
pub(super) const MAX_LINKED_TIPS: usize = 8;
/// Tips kept as candidates; the oldest beyond this stop being linked to, bounding memory.
const MAX_TIPS: usize = 4096;

/// The DAG's current tips, newest last, and what changed since the last commit.
#[derive(Default)]
pub(super) struct Tips {
    by_seq: BTreeMap<u64, String>,
    by_id: IdMap<String, u64>,
    removed: Vec<String>,
    added: Vec<(u64, String)>,
}

impl Tips {
    /// The tips `store` holds, with no change to report.
    pub(super) fn load(store: &dyn poh_store::Store) -> Result<Self, poh_store::StoreError> {
        let mut tips = Self::default();
        for (seq, id) in store.tips()? {
            tips.add(seq, id);
        }
        tips.take_changes();
        Ok(tips)
    }

    pub(super) fn add(&mut self, seq: u64, id: String) {
        self.by_id.insert(id.clone(), seq);
        self.by_seq.insert(seq, id.clone());
        self.added.push((seq, id));
        while self.by_seq.len() > MAX_TIPS {
            if let Some((_, oldest)) = self.by_seq.pop_first() {
                self.by_id.remove(&oldest);
                self.removed.push(oldest);
            }
        }
    }

    pub(super) fn remove(&mut self, id: &str) {
        if let Some(seq) = self.by_id.remove(id) {
            self.by_seq.remove(&seq);
            self.removed.push(id.to_string());
        }
    }

    /// Removes and returns up to `n` of the newest tips, oldest first, passing over those in
    /// `except` (a transaction's own children).
    pub(super) fn take_newest(&mut self, n: usize, except: &[String]) -> Vec<String> {
        let mut taken: Vec<(u64, String)> = self
            .by_seq
            .iter()
            .rev()
            .filter(|(_, id)| !except.contains(id))
            .take(n)
            .map(|(seq, id)| (*seq, id.clone()))
            .collect();
        for (seq, id) in &taken {
            self.by_seq.remove(seq);
            self.by_id.remove(id);
            self.removed.push(id.clone());
        }
        taken.reverse();
        taken.into_iter().map(|(_, id)| id).collect()
    }

    /// `(removed, added)` since the last call, netted: a tip added and removed within the
    /// same commit is in neither.
    pub(super) fn take_changes(&mut self) -> (Vec<String>, Vec<(u64, String)>) {
        let mut added = mem::take(&mut self.added);
        added.retain(|(_, id)| self.by_id.contains_key(id));
        let mut removed = mem::take(&mut self.removed);
        removed.retain(|id| !self.by_id.contains_key(id));
        (removed, added)
    }
}

/// Edges from a missing parent to the children that name it, for children handed to the
/// writer but not yet stored; dropped once their write is stored (the store has them then).
#[derive(Default)]
pub(super) struct Unstored {
    by_parent: IdMap<String, Vec<String>>,
    /// Edges of what is prepared and not yet handed to the writer.
    unsent: Vec<(String, String)>,
    /// Edges of each write handed over, oldest first.
    sent: VecDeque<Vec<(String, String)>>,
}

impl Unstored {
    pub(super) fn add(&mut self, parent: &str, child: &str) {
        self.by_parent
            .entry(parent.to_string())
            .or_default()
            .push(child.to_string());
        self.unsent.push((parent.to_string(), child.to_string()));
    }

    pub(super) fn children(&self, parent: &str) -> &[String] {
        self.by_parent.get(parent).map_or(&[], Vec::as_slice)
    }

    /// What was prepared went to the writer as one write.
    pub(super) fn sent(&mut self) {
        self.sent.push_back(mem::take(&mut self.unsent));
    }

    /// The oldest write handed over is stored. Its edges are dropped a parent at a time, in
    /// one pass over each parent's children: a write of many children naming the same parents
    /// (a replica's page) costs its edges, not their square.
    pub(super) fn written(&mut self) {
        let mut gone: IdMap<String, IdSet<String>> = IdMap::default();
        for (parent, child) in self.sent.pop_front().unwrap_or_default() {
            gone.entry(parent).or_default().insert(child);
        }
        for (parent, stored) in gone {
            if let Some(children) = self.by_parent.get_mut(&parent) {
                children.retain(|c| !stored.contains(c));
                if children.is_empty() {
                    self.by_parent.remove(&parent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tips_link_the_newest_and_net_out_changes() {
        let mut tips = Tips::default();
        for (seq, id) in ["a", "b", "c"].iter().enumerate() {
            tips.add(seq as u64, id.to_string());
        }
        tips.take_changes();
        assert_eq!(
            tips.take_newest(2, &[]),
            vec!["b".to_string(), "c".to_string()]
        );
        tips.add(3, "d".into());
        tips.add(4, "e".into());
        tips.remove("e");
        let (mut removed, added) = tips.take_changes();
        removed.sort();
        assert_eq!(
            removed,
            vec!["b".to_string(), "c".to_string(), "e".to_string()]
        );
        assert_eq!(added, vec![(3, "d".to_string())]);
        assert_eq!(
            tips.take_newest(8, &[]),
            vec!["a".to_string(), "d".to_string()]
        );
    }

    #[test]
    fn a_transaction_is_never_linked_to_its_own_children() {
        let mut tips = Tips::default();
        for (seq, id) in ["a", "child", "b"].iter().enumerate() {
            tips.add(seq as u64, id.to_string());
        }
        let except = ["child".to_string()];
        assert_eq!(
            tips.take_newest(8, &except),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(tips.take_newest(8, &[]), vec!["child".to_string()]);
    }

    #[test]
    fn unstored_edges_last_until_their_write_is_stored() {
        let mut edges = Unstored::default();
        edges.add("p", "c1");
        edges.sent();
        edges.add("p", "c2");
        edges.sent();
        assert_eq!(edges.children("p"), ["c1".to_string(), "c2".to_string()]);
        edges.written();
        assert_eq!(edges.children("p"), ["c2".to_string()]);
        edges.written();
        assert!(edges.children("p").is_empty());
    }

    #[test]
    fn tips_stay_bounded() {
        let mut tips = Tips::default();
        for seq in 0..(MAX_TIPS as u64 + 10) {
            tips.add(seq, format!("t{seq}"));
        }
        assert_eq!(tips.by_seq.len(), MAX_TIPS);
        assert_eq!(tips.by_id.len(), MAX_TIPS);
        assert!(!tips.by_id.contains_key("t0"));
    }
}
