//! Which instances of a manifest a run acts on: all of them, or those `--instance` names.
//! Instances outside the scope are dropped from the manifest right after it is loaded, so
//! no later stage can call, plan or report them (their records stay as they are).

use super::{InstanceId, Manifest};
use std::collections::BTreeSet;

/// The instances a run acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// `--instance` ids; empty means every instance.
    ids: BTreeSet<InstanceId>,
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
        }
    }

    /// Whether the run acts on `id`.
    pub fn contains(&self, id: &InstanceId) -> bool {
        self.ids.is_empty() || self.ids.contains(id)
    }

    /// The ids named that `manifest` does not have.
    pub fn missing_from<'a>(&'a self, manifest: &Manifest) -> Vec<&'a InstanceId> {
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
    fn the_whole_scope_keeps_everything_and_unknown_ids_are_named() {
        let mut m = manifest(&["1", "2"]);
        m.restrict(&Scope::all());
        assert_eq!(m.instances.len(), 2);
        let scope = Scope::only([id("2"), id("9"), id("7")]);
        assert_eq!(scope.missing_from(&m), [&id("7"), &id("9")]);
    }
}
