//! Which instances of a manifest a run acts on: all of them, those `--instance` names,
//! those of one shard (`--shard K/N`), or both. Instances outside the scope are dropped from
//! the manifest right after it is loaded, so no later stage can call, plan or report them
//! (their records stay as they are).

use super::{InstanceId, Manifest, Shard};
use std::collections::BTreeSet;

/// The instances a run acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// `--instance` ids; empty means every instance.
    ids: BTreeSet<InstanceId>,
    /// `--shard K/N`: only the instances of shard K.
    shard: Option<Shard>,
}

impl Scope {
    /// Every instance of the manifest.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these instances (every instance when `ids` is empty).
    pub fn only(ids: impl IntoIterator<Item = InstanceId>) -> Self {
        Self {
            ids: ids.into_iter().collect(),
            shard: None,
        }
    }

    /// The same scope, within one shard.
    pub fn in_shard(self, shard: Option<Shard>) -> Self {
        Self { shard, ..self }
    }

    /// The shard, if the run is one.
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }

    /// The ids `--instance` names that this run's shard does not hold.
    pub fn outside_shard(&self) -> Vec<&InstanceId> {
        match self.shard {
            Some(shard) => self.ids.iter().filter(|id| !shard.contains(id)).collect(),
            None => Vec::new(),
        }
    }

    /// Whether the run acts on `id`.
    pub fn contains(&self, id: &InstanceId) -> bool {
        (self.ids.is_empty() || self.ids.contains(id))
            && self.shard.is_none_or(|shard| shard.contains(id))
    }

    /// The ids named that `manifest` does not have.
    pub fn missing_from<'a>(&'a self, manifest: &Manifest) -> Vec<&'a InstanceId> {
        if self.ids.is_empty() {
            return Vec::new();
        }
        let present: BTreeSet<&InstanceId> = manifest.instances.iter().map(|i| &i.id).collect();
        self.ids.iter().filter(|id| !present.contains(id)).collect()
    }
}

impl Manifest {
    /// Keeps only the instances in `scope`, in manifest order.
    pub fn restrict(&mut self, scope: &Scope) {
        self.instances
            .retain(|instance| scope.contains(&instance.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(ids: &[&str]) -> Manifest {
        let mut yaml = String::from("instances:\n");
        for id in ids {
            yaml.push_str(&format!(
                "  - idInstance: \"{id}\"\n    apiTokenEnv: T\n    picture: a.jpg\n"
            ));
        }
        super::super::parse(&yaml, Path::new("m.yaml"), &|_| None).unwrap()
    }

    fn id(text: &str) -> InstanceId {
        InstanceId::parse(text).unwrap()
    }

    #[test]
    fn a_scope_keeps_its_instances_in_manifest_order() {
        let mut m = manifest(&["1", "2", "3", "4"]);
        let scope = Scope::only([id("4"), id("2")]);
        assert!(scope.missing_from(&m).is_empty());
        m.restrict(&scope);
        let kept: Vec<&str> = m.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(kept, ["2", "4"]);
    }

    #[test]
    fn three_shards_share_the_instances_without_overlap() {
        let all: Vec<String> = (0..300).map(|n| (1_101_000_000 + n).to_string()).collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut seen = Vec::new();
        for k in 0..3 {
            let mut m = manifest(&refs);
            m.restrict(&Scope::all().in_shard(Some(Shard::new(k, 3).unwrap())));
            assert!(
                (70..=130).contains(&m.instances.len()),
                "{}",
                m.instances.len()
            );
            seen.extend(m.instances.into_iter().map(|i| i.id.as_str().to_owned()));
        }
        seen.sort();
        assert_eq!(seen, all, "every instance in exactly one shard");
    }

    #[test]
    fn the_whole_scope_keeps_everything_and_unknown_ids_are_named() {
        let mut m = manifest(&["1", "2"]);
        m.restrict(&Scope::all());
        assert_eq!(m.instances.len(), 2);
        let scope = Scope::only([id("2"), id("9"), id("7")]);
        assert_eq!(scope.missing_from(&m), [&id("7"), &id("9")]);
    }
}
