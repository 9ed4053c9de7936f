//! The DAG's tips as the committer tracks them: which transactions a parentless one links to
//! (SPEC §2), and what changed since the last commit so the store's copy follows.

use std::{
    collections::{BTreeMap, HashMap},
    mem,
};

/// Most DAG tips a parentless transaction is linked to (SPEC §2).
pub(super) const MAX_LINKED_TIPS: usize = 8;
/// Tips kept as candidates; the oldest beyond this stop being linked to, bounding memory.
const MAX_TIPS: usize = 4096;

/// The DAG's current tips, newest last, and what changed since the last commit.
#[derive(Default)]
pub(super) struct Tips {
    by_seq: BTreeMap<u64, String>,
    by_id: HashMap<String, u64>,
    removed: Vec<String>,
    added: Vec<(u64, String)>,
}

impl Tips {
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

    /// Removes and returns up to `n` of the newest tips, oldest first.
    pub(super) fn take_newest(&mut self, n: usize) -> Vec<String> {
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            let Some((_, id)) = self.by_seq.pop_last() else {
                break;
            };
            self.by_id.remove(&id);
            self.removed.push(id.clone());
            taken.push(id);
        }
        taken.reverse();
        taken
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
        assert_eq!(tips.take_newest(2), vec!["b".to_string(), "c".to_string()]);
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
        assert_eq!(tips.take_newest(8), vec!["a".to_string(), "d".to_string()]);
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
